// Tiny synthetic training runs for the trainer and compare tests (TFN with 4-8 wide sub-networks, 32 training
// samples, 4-step sequences), and what comparing two runs' logs needs.
#pragma once
#include <string>
#include <vector>

#include "msmix/commands.h"
#include "msmix/run_dir.h"
#include "msmix/trainer.h"

namespace msmix::testing {

inline std::vector<std::string> tiny_overrides() {
  return {"synthetic_scale=0.125", "synthetic_max_steps=4", "hidden_dims=[8,4,8]", "text_out=4",
          "post_fusion_dim=8",     "batch_size=8"};
}

inline RunSpec tiny_spec(const std::string& mix, uint64_t seed, int64_t epochs) {
  RunSpec spec;
  spec.model = "tfn";
  spec.data = "synthetic:mosi";
  spec.mix = mix;
  spec.seed = seed;
  spec.device = "cpu";
  spec.max_epochs = epochs;
  spec.overrides = tiny_overrides();
  return spec;
}

struct Run {
  Config config;
  Dataset data;
};
// The config and prepared data of `spec`, as `msmix train` makes them.
inline Run prepared_run(const RunSpec& spec) {
  Run r{make_run_config(spec), {}};
  r.data = load_data(r.config);
  prepare_data(r.data, r.config);
  return r;
}
inline Run tiny_run(const std::string& mix, uint64_t seed, int64_t epochs) {
  return prepared_run(tiny_spec(mix, seed, epochs));
}

// Log lines without the wall-clock field, which is the one thing allowed to differ between runs.
inline std::vector<std::string> without_seconds(std::vector<Json> lines) {
  std::vector<std::string> out;
  for (Json& line : lines) {
    line.erase("seconds");
    out.push_back(line.dump());
  }
  return out;
}

inline const std::vector<std::string> kMosiMetrics = {"Has0_acc_2", "Has0_F1_score", "Non0_acc_2", "Non0_F1_score",
                                               "Mult_acc_5", "Mult_acc_7",    "MAE",        "Corr"};


}  // namespace msmix::testing
