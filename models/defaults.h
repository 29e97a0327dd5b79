// Backbone hyperparameters: one table keyed by (backbone, dataset), with MMSA v2.2.1's values
// (config/config_regression.json plus what its trainers hard-code: loss, optimizer, grad clipping), as a
// flat JSON object per entry. A run starts from backbone_defaults() and applies "key=value" overrides from
// the command line; the model constructors and the trainer read it through the typed getters below.
//
//   Config c = backbone_defaults("tfn", "mosi");     // {"hidden_dims": [128, 32, 128], "text_out": 32, ...}
//   apply_overrides(c, {"learning_rate=5e-4", "dropouts=[0.2,0.2,0.2,0.5]"});
//   int64_t r = config_int(c, "rank");               // a missing key or wrong type is an Error
//
// Adding a backbone: write one `Config <name>_defaults(const std::string& dataset)`
// in defaults.cpp and list it in the table there. See docs/backbones.md for every key.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/module.h"

namespace msmix {

using Config = nlohmann::json;

// The three MMSA datasets the table covers.
const std::vector<std::string>& known_datasets();  // {"mosi", "mosei", "sims", "mosi-utterance"}
// Backbones with an entry in the table, in table order.
std::vector<std::string> backbones_with_defaults();
// The entry for (backbone, dataset): a flat object that also holds "model" and "dataset". Unknown names are
// an Error listing the known ones.
Config backbone_defaults(const std::string& backbone, const std::string& dataset);

// "key=value": value is parsed as JSON (3, 1e-3, true, [64, 16, 64], "text"), or taken as a string when it
// is not JSON (loss=mse). The key must exist in `config` and the value must have its type: an integer stays
// an integer, a float takes any number, a bool takes true/false, a string takes a string, an array takes an
// array of the same length and element types. Anything else is an Error that lists the valid keys.
void apply_override(Config& config, const std::string& assignment);
void apply_overrides(Config& config, const std::vector<std::string>& assignments);

// Typed reads; a missing key or a wrong type is an Error naming the key, the model and the valid keys.
int64_t config_int(const Config& config, const std::string& key);
float config_float(const Config& config, const std::string& key);
bool config_bool(const Config& config, const std::string& key);
std::string config_string(const Config& config, const std::string& key);
std::vector<int64_t> config_ints(const Config& config, const std::string& key, size_t expected_size);
std::vector<float> config_floats(const Config& config, const std::string& key, size_t expected_size);
// The value when present, else `fallback` (types checked as above).
float config_float_or(const Config& config, const std::string& key, float fallback);
int64_t config_int_or(const Config& config, const std::string& key, int64_t fallback);
bool config_bool_or(const Config& config, const std::string& key, bool fallback);

// Input feature widths (MMSA's feature_dims order: text, audio, vision).
struct FeatureDims {
  int64_t text = 768, audio = 0, vision = 0;
};
FeatureDims config_feature_dims(const Config& config);  // from "feature_dims"

// A named optimizer parameter group with the lr and weight decay the defaults give it. models/ sits above
// msmix/, so the trainer turns these into msmix::ParamGroup (params, lr, weight_decay) itself.
struct NamedParamGroup {
  std::string name;
  NamedTensors params;
  float lr = 0;
  float weight_decay = 0;
  std::vector<Tensor> tensors() const;
};

}  // namespace msmix
