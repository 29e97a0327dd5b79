// msmix bench (msmix/bench_model.h): the run config it times, the data it sizes, what it reports. The timings
// themselves are not asserted (speed belongs in bench/, not in unit tests); tiny models keep this fast.
#include <fmt/format.h>

#include <cmath>
#include <fstream>

#include "data/loader.h"
#include "models/registry.h"
#include "msmix/bench_model.h"
#include "msmix/trainer.h"
#include "ops/cuda/kernels.h"
#include "tests/cuda/cuda_testing.h"
#include "tests/files.h"
#include "tests/testing.h"

using namespace msmix;
using msmix::testing::check_throws_with;

namespace {

BenchOptions tiny_tfn() {
  BenchOptions o;
  o.model = "tfn";
  o.data = "synthetic:mosi";
  o.steps = 3;
  o.warmup = 1;
  o.batch = 8;
  o.overrides = {"synthetic_max_steps=4", "hidden_dims=[8,4,8]", "text_out=4", "post_fusion_dim=8"};
  return o;
}

}  // namespace

TEST_CASE("bench: times the trainer's steps on the run config, with one optimizer step per timed step") {
  std::vector<int64_t> seen;
  BenchResult r = bench_model(tiny_tfn(), [&](int64_t step, int64_t total, double ms) {
    CHECK(total == 4);
    CHECK(ms > 0);
    seen.push_back(step);
  });
  CHECK(seen == std::vector<int64_t>{1, 2, 3, 4});  // warm-up and timed steps, in order
  REQUIRE(r.step_ms.size() == 3);
  for (double ms : r.step_ms) CHECK(ms > 0);
  CHECK(r.min_ms <= r.median_ms);
  CHECK(r.median_ms <= r.max_ms);
  CHECK(r.median_ms == doctest::Approx(r.step_ms[0] + r.step_ms[1] + r.step_ms[2] - r.min_ms - r.max_ms));
  CHECK(r.items_per_s == doctest::Approx(8 / (r.median_ms / 1000)));
  CHECK(r.cpu_ms > 0);
  CHECK(r.batch == 8);
  CHECK(config_int(r.config, "batch_size") == 8);
  CHECK(config_int(r.config, "update_epochs") == 1);
  CHECK(config_int(r.config, "max_epochs") == 1);
  CHECK_FALSE(config_bool(r.config, "checkpoint"));
  // TFN is need_normalized: audio and vision arrive time-averaged, text cut to 4 steps by the override.
  REQUIRE(r.inputs.size() == 3);
  CHECK(r.inputs[0].second == Shape{4, 768});
  CHECK(r.inputs[1].second == Shape{1, 5});
  CHECK(r.inputs[2].second == Shape{1, 20});
  CHECK(r.base_bytes > 0);
  CHECK(r.peak_bytes >= r.base_bytes);
  // The backbone timed is the one the trainer builds for this config: count it independently.
  auto model = make_backbone("tfn", {768, 5, 20}, r.config);
  CHECK(r.trainable_params == model->num_parameters(true));

  Json j = bench_json(r);
  CHECK(j["ms_per_step"].get<double>() == r.median_ms);
  CHECK(j["step_ms"].size() == 3);
  CHECK(j["batch"] == 8);
  CHECK(j["inputs"]["text"] == Json::array({4, 768}));
  CHECK(bench_text(r).find("trainable parameters: ") != std::string::npos);
  CHECK(j["gpu_calls_per_step"] == 0);  // the CPU queues nothing on a GPU
  CHECK_FALSE(j.contains("gpu_kernels"));  // the GPU kernel choices only with a GPU run
  CHECK(bench_text(r).find("gpu kernels") == std::string::npos);
  CHECK_FALSE(j.contains("cuda_graph"));

  // With cuda_graph the report says what became of it (on the CPU: nothing captured).
  BenchOptions g = tiny_tfn();
  g.overrides.push_back("cuda_graph=true");
  BenchResult rg = bench_model(g);
  CHECK(bench_json(rg)["cuda_graph"] == "not used: the CPU runs uncaptured");
  CHECK(bench_text(rg).find("cuda_graph: not used") != std::string::npos);
}

TEST_CASE("bench --ops: as many steps again with the op profiler, after the timed ones, by phase and op") {
  BenchOptions o = tiny_tfn();
  o.ops = true;
  std::vector<int64_t> seen;
  BenchResult r = bench_model(o, [&](int64_t step, int64_t total, double) {
    CHECK(total == 7);  // 1 warm-up, 3 timed, 3 profiled
    seen.push_back(step);
  });
  CHECK(seen.size() == 7);
  CHECK(r.step_ms.size() == 3);  // the timed steps only
  CHECK(r.ops_steps == 3);
  CHECK_FALSE(r.ops_synchronized);  // the CPU: nothing to wait for
  REQUIRE_FALSE(r.ops.empty());
  // Every phase of a trainer step, each range entered once per step; the ops inside them.
  auto calls_of = [&](const std::string& phase, const std::string& name) {
    for (const OpProfile::Entry& e : r.ops)
      if (e.phase == phase && e.name == name) return e.calls;
    return int64_t(0);
  };
  CHECK(calls_of("train step", "train step") == 3);
  CHECK(calls_of("forward", "forward") == 3);
  CHECK(calls_of("backward", "backward") == 3);
  CHECK(calls_of("optimizer step", "optimizer step") == 3);
  CHECK(calls_of("forward", "l1_loss") == 3);  // MMSA's loss, once per step
  CHECK(calls_of("forward", "linear") > 0);
  CHECK(calls_of("backward", "linear") > 0);
  double self = 0;
  for (const OpProfile::Entry& e : r.ops) {
    CHECK(e.calls % 3 == 0);  // the same ops every step
    CHECK(e.self_ms >= 0);
    self += e.self_ms;
    if (&e != &r.ops[0]) CHECK((&e - 1)->self_ms >= e.self_ms);  // largest first
  }
  CHECK(self == doctest::Approx(r.ops_ranges_ms));
  CHECK(r.ops_ranges_ms <= r.ops_ms);  // the ranges sit inside the profiled steps' wall time

  const Json j = bench_json(r);
  CHECK(j["ops"]["steps"] == 3);
  CHECK(j["ops"]["ranges"].size() == r.ops.size());
  CHECK(j["ops"]["ranges"][0]["self_ms_per_step"].get<double>() == doctest::Approx(r.ops[0].self_ms / 3));
  const std::string text = bench_text(r);
  CHECK(text.find("where a step's time goes (3 more steps with the op profiler") != std::string::npos);
  CHECK(text.find("optimizer step") != std::string::npos);
  CHECK(ops_table(r, 2).find(fmt::format("({} more)", r.ops.size() - 2)) != std::string::npos);
  CHECK_FALSE(bench_json(bench_model(tiny_tfn())).contains("ops"));  // only when asked
}

TEST_CASE("bench --trace: one profiled step, every range in the order it ran, nested under the step") {
  BenchOptions o = tiny_tfn();
  o.trace = true;
  BenchResult r = bench_model(o);
  CHECK(r.step_ms.size() == 3);
  CHECK(r.ops_steps == 1);  // one more step, traced
  REQUIRE(r.trace.size() > 10);
  CHECK(r.trace[0].depth == 0);
  CHECK(r.trace[0].name == "train step");
  std::vector<std::string> phases;
  for (size_t i = 1; i < r.trace.size(); ++i) {
    const OpProfile::Event& e = r.trace[i];
    CAPTURE(i);
    CHECK(e.depth >= 1);                             // one step: a single outermost range
    CHECK(e.depth <= r.trace[i - 1].depth + 1);      // opened inside the range before it, or after it closed
    CHECK(e.ms >= 0);
    CHECK(e.ms <= r.trace[0].ms);
    if (e.depth == 1 && e.name != "reshape" && e.name != "concat") phases.push_back(e.name);  // the loss values
  }
  CHECK(phases == std::vector<std::string>{"forward", "backward", "optimizer step"});
  // Modules open ranges named by their state-dict path: TFN's text LSTM inside its text subnet, in "encode".
  bool found = false;
  for (size_t i = 0; i + 1 < r.trace.size(); ++i)
    if (r.trace[i].name == "text_subnet (TextSubNet)") {
      found = true;
      CHECK(r.trace[i].depth == 3);  // train step > forward > encode > text_subnet
      CHECK(r.trace[i + 1].name == "text_subnet.rnn (LSTM)");
      CHECK(r.trace[i + 1].depth == 4);
    }
  CHECK(found);
  const Json j = bench_json(r);
  CHECK(j["trace"].size() == r.trace.size());
  CHECK(j["trace"][0]["range"] == "train step");
  CHECK(bench_text(r).find("one training step, range by range") != std::string::npos);
}

TEST_CASE("bench: default batch from the table, --set wins over the bench's own keys, msmix mixing inside") {
  BenchOptions o = tiny_tfn();
  o.batch = 0;  // the table's: TFN on MOSI is 32
  o.steps = 1;
  o.warmup = 0;
  BenchResult r = bench_model(o);
  CHECK(r.batch == 32);
  CHECK(r.step_ms.size() == 1);

  BenchOptions m;
  m.model = "mult";
  m.data = "synthetic:mosi";
  m.steps = 2;
  m.warmup = 0;
  m.batch = 4;
  m.mix = "msmix";
  m.overrides = {"synthetic_max_steps=6", "dst_feature_dim_nheads=[4,2]", "nlevels=1", "update_epochs=8"};
  BenchResult rm = bench_model(m);
  CHECK(config_int(rm.config, "update_epochs") == 8);  // the user's choice over the bench's 1
  CHECK(config_string(rm.config, "mix") == "msmix");
  CHECK(rm.inputs[1].second == Shape{6, 5});  // MulT keeps the (cut) sequences
  CHECK(rm.step_ms.size() == 2);
}

TEST_CASE("bench: bad options are errors that name them") {
  BenchOptions o = tiny_tfn();
  o.steps = 0;
  check_throws_with([&] { bench_model(o); }, {"--steps"});
  o = tiny_tfn();
  o.warmup = -1;
  check_throws_with([&] { bench_model(o); }, {"--warmup"});
  o = tiny_tfn();
  o.model = "nope";
  check_throws_with([&] { bench_model(o); }, {"unknown backbone 'nope'"});
  o = tiny_tfn();
  o.overrides.push_back("rnak=3");
  check_throws_with([&] { bench_model(o); }, {"unknown key 'rnak'"});
}

TEST_CASE("sized_data: synthetic at exactly the asked sizes and MMSA's shapes; a file's rows cut and cycled") {
  Config c = {{"data", "synthetic:mosi"}, {"synthetic_seed", 3}, {"synthetic_max_steps", 0}};
  Dataset d = sized_data(c, 5, 2, 3);
  CHECK(d.train.size() == 5);
  CHECK(d.valid.size() == 2);
  CHECK(d.test.size() == 3);
  CHECK(d.train.text.shape() == Shape{5, 50, 768});
  CHECK(d.train.audio.shape() == Shape{5, 375, 5});
  CHECK(d.train.vision.shape() == Shape{5, 500, 20});
  CHECK(!d.train.text_bert.defined());
  d.validate();
  c["use_bert"] = true;  // token ids too, for a backbone's BERT (msmix info / bench with use_bert=true)
  CHECK(sized_data(c, 5, 2, 3).train.text_bert.shape() == Shape{5, 3, 50});

  const std::string pkl = testing::shared_mosi_utterance();
  if (pkl.empty()) {
    MESSAGE("the file case: " << testing::kMissingSharedData);
    return;
  }
  Dataset full = load_mmsa(pkl);
  const int64_t n = full.valid.size();
  Dataset cut = sized_data(Config{{"data", pkl}}, 3, n + 2, 1);
  CHECK(cut.train.size() == 3);
  CHECK(cut.valid.size() == n + 2);
  CHECK(cut.test.size() == 1);
  for (int64_t row : {int64_t(0), int64_t(1), n - 1, n, n + 1}) {
    CAPTURE(row);
    Batch want = gather_batch(full.valid, {row % n}), got = gather_batch(cut.valid, {row});
    CHECK(got.text.to_vector() == want.text.to_vector());
    CHECK(got.audio.to_vector() == want.audio.to_vector());
    CHECK(got.labels.to_vector() == want.labels.to_vector());
    CHECK(got.ids == want.ids);
  }
}

// On the GPU the report names the kernel choices the step ran with (gpucheck's rows rely on it).
TEST_CASE("cuda bench: a GPU run reports its kernel choices, the LSTM's included") {
  MSMIX_REQUIRE_GPU();
  msmix::testing::LstmKernelScope scope(cuda::LstmKernel::stepwise);
  BenchOptions o = tiny_tfn();
  o.device = "cuda";
  BenchResult r = bench_model(o);
  const Json j = bench_json(r);
  REQUIRE(j.contains("gpu_kernels"));
  CHECK(j["gpu_kernels"].get<std::string>().find("LSTM stepwise (MSMIX_CUDA_LSTM)") == 0);
  CHECK(bench_text(r).find("gpu kernels: LSTM stepwise") != std::string::npos);
  CHECK(j["gpu_calls_per_step"].get<double>() > 0);
}
