#include "models/defaults.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <functional>
#include <utility>

#include "engine/error.h"
#include "models/almt.h"
#include "models/glomo.h"
#include "models/misa.h"
#include "models/mult.h"

namespace msmix {

namespace {

// Per-dataset facts every entry carries (MMSA's datasetCommonParams, unaligned files): input widths in
// MMSA's order (text, audio, vision).
Config dataset_facts(const std::string& dataset) {
  if (dataset == "mosi") return {{"feature_dims", {768, 5, 20}}};
  if (dataset == "mosi-utterance") return {{"feature_dims", {100, 73, 100}}};  // shared/data/mosi-utterance
  if (dataset == "mosei") return {{"feature_dims", {768, 74, 35}}};
  return {{"feature_dims", {768, 33, 709}}};  // sims
}

// What MMSA's single-task trainers for LF_DNN, TFN and LMF share: need_normalized inputs (audio and vision
// averaged over time), L1 loss, Adam, no gradient clipping (-1 = off, MMSA's convention), early stop after 8
// epochs without a 1e-6 improvement of the validation loss. max_epochs is our bound: MMSA loops until the
// early stop fires.
Config late_fusion_common() {
  return {{"need_normalized", true}, {"need_data_aligned", false}, {"use_bert", false},
          {"loss", "l1"},           {"optimizer", "adam"},         {"grad_clip", -1.0},
          {"update_epochs", 1},     {"early_stop", 8},             {"key_eval", "Loss"},
          {"max_epochs", 200}};
}

// Keys shared by the three MMSA entries: hidden_dims = (text, audio, video) widths of the sub-networks,
// dropouts = (audio, video, text, post-fusion), as MMSA orders them.
Config lf_dnn_defaults(const std::string& dataset) {
  Config c = late_fusion_common();
  if (dataset == "mosi") {
    c.update({{"hidden_dims", {128, 16, 128}}, {"text_out", 256}, {"post_fusion_dim", 128},
              {"dropouts", {0.2, 0.2, 0.2, 0.2}}, {"batch_size", 128}, {"learning_rate", 1e-3},
              {"weight_decay", 0.01}});
  } else if (dataset == "mosei") {
    c.update({{"hidden_dims", {128, 32, 128}}, {"text_out", 128}, {"post_fusion_dim", 128},
              {"dropouts", {0.2, 0.2, 0.2, 0.2}}, {"batch_size", 64}, {"learning_rate", 2e-3},
              {"weight_decay", 1e-3}});
  } else {  // sims
    c.update({{"hidden_dims", {128, 32, 128}}, {"text_out", 256}, {"post_fusion_dim", 32},
              {"dropouts", {0.3, 0.3, 0.3, 0.5}}, {"batch_size", 128}, {"learning_rate", 5e-3},
              {"weight_decay", 5e-3}});
  }
  return c;
}

// TFN's trainer passes no weight decay to Adam: 0 here.
Config tfn_defaults(const std::string& dataset) {
  Config c = late_fusion_common();
  c["weight_decay"] = 0.0;
  if (dataset == "mosi") {
    c.update({{"hidden_dims", {128, 32, 128}}, {"text_out", 32}, {"post_fusion_dim", 64},
              {"dropouts", {0.3, 0.3, 0.3, 0.5}}, {"batch_size", 32}, {"learning_rate", 1e-3}});
  } else if (dataset == "mosei") {
    c.update({{"hidden_dims", {128, 16, 128}}, {"text_out", 128}, {"post_fusion_dim", 16},
              {"dropouts", {0.4, 0.4, 0.4, 0.4}}, {"batch_size", 128}, {"learning_rate", 5e-3}});
  } else {  // sims
    c.update({{"hidden_dims", {128, 32, 128}}, {"text_out", 256}, {"post_fusion_dim", 32},
              {"dropouts", {0.4, 0.4, 0.4, 0.4}}, {"batch_size", 32}, {"learning_rate", 5e-4}});
  }
  return c;
}

// LMF has no text_out key: MMSA derives it as text hidden / 2. factor_lr is the factors' group lr;
// train_fusion_weights=false reproduces MMSA's optimizer, which leaves fusion_weights / fusion_bias out.
Config lmf_defaults(const std::string& dataset) {
  Config c = late_fusion_common();
  c["train_fusion_weights"] = false;
  if (dataset == "mosi") {
    c.update({{"hidden_dims", {128, 16, 128}}, {"dropouts", {0.3, 0.3, 0.3, 0.3}}, {"rank", 3},
              {"batch_size", 64}, {"learning_rate", 1e-3}, {"factor_lr", 1e-3}, {"weight_decay", 5e-3}});
  } else if (dataset == "mosei") {
    c.update({{"hidden_dims", {128, 16, 128}}, {"dropouts", {0.2, 0.2, 0.2, 0.2}}, {"rank", 4},
              {"batch_size", 32}, {"learning_rate", 1e-3}, {"factor_lr", 1e-3}, {"weight_decay", 1e-3}});
  } else {  // sims
    c.update({{"hidden_dims", {64, 16, 64}}, {"dropouts", {0.2, 0.2, 0.2, 0.2}}, {"rank", 4},
              {"batch_size", 64}, {"learning_rate", 2e-3}, {"factor_lr", 5e-4}, {"weight_decay", 5e-3}});
  }
  return c;
}

// The table: one function per backbone.
using DefaultsFn = std::function<Config(const std::string& dataset)>;

// mosi-utterance (one step per modality) is MOSI with other widths: backbones without sequence-length
// constraints take MOSI's hyperparameters for it; MulT (kernels of 1) and ALMT (positional tables of 1) have
// their own entries.
DefaultsFn as_mosi_for_utterance(Config (*fn)(const std::string&)) {
  return [fn](const std::string& dataset) { return fn(dataset == "mosi-utterance" ? "mosi" : dataset); };
}

const std::vector<std::pair<std::string, DefaultsFn>>& table() {
  static const std::vector<std::pair<std::string, DefaultsFn>> entries = {
      {"lf_dnn", as_mosi_for_utterance(lf_dnn_defaults)},
      {"tfn", as_mosi_for_utterance(tfn_defaults)},
      {"lmf", as_mosi_for_utterance(lmf_defaults)},
      {"mult", mult_defaults},
      {"misa", misa_defaults},
      {"almt", almt_defaults},
      {"glomo", glomo_defaults},
  };
  return entries;
}

std::string valid_keys(const Config& config) {
  std::vector<std::string> keys;
  for (auto it = config.begin(); it != config.end(); ++it) keys.push_back(it.key());
  return fmt::format("{}", fmt::join(keys, ", "));
}

std::string model_of(const Config& config) {
  return config.is_object() && config.contains("model") && config["model"].is_string()
             ? config["model"].get<std::string>()
             : std::string("config");
}

const Config& lookup(const Config& config, const std::string& key) {
  MSMIX_CHECK(config.is_object() && config.contains(key), "{}: config has no key '{}'; valid keys: {}",
              model_of(config), key, config.is_object() ? valid_keys(config) : std::string("(none)"));
  return config[key];
}

[[noreturn]] void wrong_type(const Config& config, const std::string& key, const char* wanted) {
  throw Error(fmt::format("{}: config key '{}' must be {}, got {}", model_of(config), key, wanted,
                          config[key].dump()));
}

// Can `value` replace `current` (see apply_override)? Returns the value to store (an integer given for a
// float becomes a float), or a null JSON when the types do not fit.
Config fitted(const Config& current, const Config& value) {
  if (current.is_boolean()) return value.is_boolean() ? value : Config();
  if (current.is_number_integer()) return value.is_number_integer() ? value : Config();
  if (current.is_number_float()) return value.is_number() ? Config(value.get<double>()) : Config();
  if (current.is_string()) return value.is_string() ? value : Config();
  if (current.is_array()) {
    if (!value.is_array() || value.size() != current.size()) return Config();
    Config out = Config::array();
    for (size_t i = 0; i < value.size(); ++i) {
      Config item = fitted(current[i], value[i]);
      if (item.is_null()) return Config();
      out.push_back(item);
    }
    return out;
  }
  return Config();
}

std::string type_name(const Config& v) {
  if (v.is_boolean()) return "a bool";
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return fmt::format("an array of {} like {}", v.size(), v.dump());
  return v.type_name();
}

}  // namespace

const std::vector<std::string>& known_datasets() {
  static const std::vector<std::string> names = {"mosi", "mosei", "sims", "mosi-utterance"};
  return names;
}

std::vector<std::string> backbones_with_defaults() {
  std::vector<std::string> names;
  for (const auto& [name, fn] : table()) names.push_back(name);
  return names;
}

Config backbone_defaults(const std::string& backbone, const std::string& dataset) {
  bool dataset_known = false;
  for (const auto& d : known_datasets()) dataset_known |= d == dataset;
  MSMIX_CHECK(dataset_known, "defaults: unknown dataset '{}'; known: {}", dataset, fmt::join(known_datasets(), ", "));
  for (const auto& [name, fn] : table()) {
    if (name != backbone) continue;
    Config c = {{"model", backbone}, {"dataset", dataset}};
    c.update(dataset_facts(dataset));
    c.update(fn(dataset));
    return c;
  }
  throw Error(fmt::format("defaults: unknown backbone '{}'; known: {}", backbone,
                          fmt::join(backbones_with_defaults(), ", ")));
}

void apply_override(Config& config, const std::string& assignment) {
  size_t eq = assignment.find('=');
  MSMIX_CHECK(eq != std::string::npos && eq > 0, "{}: override '{}' is not key=value; valid keys: {}",
              model_of(config), assignment, valid_keys(config));
  std::string key = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  MSMIX_CHECK(config.is_object() && config.contains(key), "{}: unknown key '{}' in override '{}'; valid keys: {}",
              model_of(config), key, assignment, valid_keys(config));
  Config& current = config[key];
  Config value = Config::parse(text, nullptr, /*allow_exceptions=*/false);
  // A string key takes the text as written (loss=mse), quoted or not.
  if (current.is_string() && !value.is_string()) value = text;
  Config fit = value.is_discarded() ? Config() : fitted(current, value);
  MSMIX_CHECK(!fit.is_null(), "{}: override '{}': '{}' needs {}, got '{}'; valid keys: {}", model_of(config),
              assignment, key, type_name(current), text, valid_keys(config));
  current = fit;
}

void apply_overrides(Config& config, const std::vector<std::string>& assignments) {
  for (const auto& a : assignments) apply_override(config, a);
}

int64_t config_int(const Config& config, const std::string& key) {
  const Config& v = lookup(config, key);
  if (!v.is_number_integer()) wrong_type(config, key, "an integer");
  return v.get<int64_t>();
}

float config_float(const Config& config, const std::string& key) {
  const Config& v = lookup(config, key);
  if (!v.is_number()) wrong_type(config, key, "a number");
  return v.get<float>();
}

bool config_bool(const Config& config, const std::string& key) {
  const Config& v = lookup(config, key);
  if (!v.is_boolean()) wrong_type(config, key, "a bool");
  return v.get<bool>();
}

std::string config_string(const Config& config, const std::string& key) {
  const Config& v = lookup(config, key);
  if (!v.is_string()) wrong_type(config, key, "a string");
  return v.get<std::string>();
}

std::vector<int64_t> config_ints(const Config& config, const std::string& key, size_t expected_size) {
  const Config& v = lookup(config, key);
  std::string wanted = fmt::format("an array of {} integers", expected_size);
  if (!v.is_array() || v.size() != expected_size) wrong_type(config, key, wanted.c_str());
  std::vector<int64_t> out;
  for (const auto& item : v) {
    if (!item.is_number_integer()) wrong_type(config, key, wanted.c_str());
    out.push_back(item.get<int64_t>());
  }
  return out;
}

std::vector<float> config_floats(const Config& config, const std::string& key, size_t expected_size) {
  const Config& v = lookup(config, key);
  std::string wanted = fmt::format("an array of {} numbers", expected_size);
  if (!v.is_array() || v.size() != expected_size) wrong_type(config, key, wanted.c_str());
  std::vector<float> out;
  for (const auto& item : v) {
    if (!item.is_number()) wrong_type(config, key, wanted.c_str());
    out.push_back(item.get<float>());
  }
  return out;
}

float config_float_or(const Config& config, const std::string& key, float fallback) {
  return config.is_object() && config.contains(key) ? config_float(config, key) : fallback;
}

int64_t config_int_or(const Config& config, const std::string& key, int64_t fallback) {
  return config.is_object() && config.contains(key) ? config_int(config, key) : fallback;
}

bool config_bool_or(const Config& config, const std::string& key, bool fallback) {
  return config.is_object() && config.contains(key) ? config_bool(config, key) : fallback;
}

FeatureDims config_feature_dims(const Config& config) {
  std::vector<int64_t> d = config_ints(config, "feature_dims", 3);
  return {d[0], d[1], d[2]};
}

std::vector<Tensor> NamedParamGroup::tensors() const {
  std::vector<Tensor> out;
  for (const auto& [name, t] : params) out.push_back(t);
  return out;
}

}  // namespace msmix
