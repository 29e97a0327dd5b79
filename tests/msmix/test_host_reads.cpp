// The training step reads nothing back to the host: on a GPU every read (a loss checked per step, an index
// copied back to be validated, a scatter-add planned from a device index) waits for the device to finish all
// it was given, so the host cannot queue the next kernels while the GPU runs. engine/tensor.h counts those
// reads on both devices (on the CPU, to_vector() and item() stand for them), so the same counts hold here
// without a GPU and, where one is found, on it: no backbone and no mixing method makes a read between two
// steps (MS-Mix selects its pairs on the device, from draws made before the step), and an epoch's end makes
// at most three (its loss sums, the mixing statistics, the validation scores).
#include <string>
#include <vector>

#include "engine/cuda_runtime.h"
#include "msmix/trainer.h"
#include "ops/ops.h"
#include "tests/testing.h"

using namespace msmix;

namespace {

struct Case {
  const char* model;
  const char* mix;
  std::vector<std::string> overrides;
  int64_t reads_per_step;
};

const std::vector<Case>& cases() {
  static const std::vector<Case> all = {
      {"tfn", "none", {"hidden_dims=[8,4,8]", "text_out=4", "post_fusion_dim=8"}, 0},
      {"tfn", "mixup", {"hidden_dims=[8,4,8]", "text_out=4", "post_fusion_dim=8"}, 0},
      {"tfn", "msmix", {"hidden_dims=[8,4,8]", "text_out=4", "post_fusion_dim=8"}, 0},
      {"lf_dnn", "none", {}, 0},
      {"lf_dnn", "manifold", {}, 0},
      {"lmf", "mixup", {"grad_clip_norm=1"}, 0},  // clipping by norm decides on the device
      {"lmf", "multimix", {"mix_count=12"}, 0},   // the Dirichlet weights drawn on the host, copied in
      {"mult", "none",  // clips grads by value, accumulates over update_epochs batches
       {"dst_feature_dim_nheads=[8,2]", "nlevels=1", "conv1d_kernel_size_l=1", "conv1d_kernel_size_a=1",
        "conv1d_kernel_size_v=1", "update_epochs=2"},
       0},
      {"mult", "msmix",  // sequences mixed, intensities from pooled vectors
       {"dst_feature_dim_nheads=[8,2]", "nlevels=1", "conv1d_kernel_size_l=1", "conv1d_kernel_size_a=1",
        "conv1d_kernel_size_v=1"},
       0},
  };
  return all;
}

void check_reads(const Case& c, const std::string& device) {
  const std::string what = std::string(c.model) + " " + c.mix + " on " + device;
  CAPTURE(what);
  RunSpec spec;
  spec.model = c.model;
  spec.data = "synthetic:mosi";
  spec.mix = c.mix;
  spec.seed = 1111;
  spec.device = device;
  spec.max_epochs = 2;
  spec.overrides = {"synthetic_scale=0.125", "synthetic_max_steps=4", "batch_size=8"};
  spec.overrides.insert(spec.overrides.end(), c.overrides.begin(), c.overrides.end());
  Config config = make_run_config(spec);
  Dataset data = load_data(config);
  prepare_data(data, config);
  Trainer trainer(config, data);

  // Reads between one callback and the next: within an epoch that is one loader batch plus one step.
  int64_t last = host_read_count(), steps = 0, epochs = 0;
  trainer.on_step = [&](const StepInfo& s) {
    const int64_t reads = host_read_count() - last;
    CAPTURE(s.epoch);
    CAPTURE(s.step);
    if (s.step > 1) CHECK(reads == c.reads_per_step);
    else CHECK(reads <= c.reads_per_step);  // the first step follows build() or the epoch's start: nothing more
    ++steps;
    last = host_read_count();
  };
  trainer.on_epoch = [&](const Json& line) {
    CAPTURE(line.dump());
    CHECK(host_read_count() - last <= 3);  // loss sums, mixing statistics, validation
    ++epochs;
    last = host_read_count();
  };
  const TrainResult r = trainer.fit();
  CHECK(epochs == 2);
  CHECK(steps == 2 * trainer.steps_per_epoch());
  CHECK(r.status == "finished");
}

}  // namespace

TEST_CASE("host reads: a training step reads nothing back, whatever it mixes; an epoch, at most 3") {
  for (const Case& c : cases()) check_reads(c, "cpu");
  if (cuda::device_count() == 0) {
    MESSAGE("no GPU (" << cuda::runtime_info() << "): the counts were checked on the CPU only");
    return;
  }
  for (const Case& c : cases()) check_reads(c, "cuda");
}

TEST_CASE("host reads: an index made on the host is checked there; a device-made one is read back to be checked") {
  const int64_t before = host_read_count();
  Tensor x = Tensor::arange(12).to(Device::cpu());
  Tensor x2 = reshape(x, {4, 3});
  Tensor host_made = index_tensor({3, 0, 3}, Device::cpu());
  CHECK(host_made.to_vector() == std::vector<float>{3, 0, 3});
  const int64_t after_read = host_read_count();
  CHECK(after_read == before + 1);  // the to_vector above
  Tensor rows = index_select(x2, 0, host_made);
  CHECK(host_read_count() == after_read);
  testing::check_throws_with([&] { index_select(x2, 1, host_made); }, {"index_select", "index[0] = 3", "[0, 3)"});
  testing::check_throws_with([&] { index_tensor({1, -2}, Device::cpu()); }, {"index_tensor", "-2", "[1]"});
  // Written in place, it is an ordinary tensor again: its values are checked as the device holds them.
  Tensor copy = index_tensor({0, 1, 2}, Device::cpu());
  copy.copy_(Tensor::from_vector({0, 7, 1}, {3}));
  testing::check_throws_with([&] { index_select(x2, 0, copy); }, {"index[1] = 7", "out of range [0, 4)"});
  CHECK(rows.to_vector() == std::vector<float>{9, 10, 11, 0, 1, 2, 9, 10, 11});
}
