// CUDA graphs (msmix/graph_step.h): a captured step replays to the same numbers as the uncaptured one (the
// same kernels in the same order: equal but for cuBLAS, which may pick another algorithm under capture, hence
// a relative 1e-6), dropout draws fresh masks at each replay, and a step that cannot be captured (it reads
// back) leaves nothing behind. Then whole trainer runs with cuda_graph on and off. Skipped without a GPU.
#include <cmath>

#include "engine/op_profile.h"
#include "msmix/graph_step.h"
#include "msmix/optimizer.h"
#include "msmix/trainer.h"
#include "ops/attention.h"
#include "ops/cuda/kernels.h"
#include "ops/ops.h"
#include "tests/cuda/cuda_testing.h"
#include "tests/msmix/tiny_runs.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

// A batch of n random rows on the GPU (only the tensors a GraphStep copies matter here); text [n, 7, 10] for
// the attention net.
Batch gpu_batch(int64_t n, uint64_t seed) {
  Batch b;
  b.text = leaf({n, 7, 10}, seed + 2).detach().to(Device::cuda());
  b.audio = leaf({n, 6}, seed).detach().to(Device::cuda());
  b.labels = leaf({n}, seed + 1).detach().to(Device::cuda());
  for (int64_t i = 0; i < n; ++i) b.indices.push_back(i);
  return b;
}

// A two-layer net with dropout: loss = mean((dropout(relu(x w1)) w2 - y)^2); the body a GraphStep captures.
// Two nets built alike hold equal weights in their own storage.
struct Net {
  Tensor w1 = gpu_leaf(leaf({6, 16}, 90, 0.5f)), w2 = gpu_leaf(leaf({16, 1}, 91, 0.5f));
  std::vector<Tensor> params() const { return {w1, w2}; }
  Tensor step(const Batch& b) {
    Tensor h = dropout(relu(matmul(b.audio, w1)), 0.3f, true);
    Tensor loss = mse_loss(reshape(matmul(h, w2), {b.size()}), b.labels);
    loss.backward();
    return reshape(loss.detach(), {1});
  }
};

// Self-attention over the text with the fused kernel's own dropout on the probabilities (2 heads of width 5).
struct AttentionNet {
  Tensor w = gpu_leaf(leaf({10, 10}, 92, 0.4f));
  std::vector<Tensor> params() const { return {w}; }
  Tensor step(const Batch& b) {
    Tensor q = matmul(b.text, w);
    Tensor o = fused_attention(q, b.text, b.text, 2, 0.45f, Tensor(), Tensor(), 0.3f, true, default_generator());
    Tensor loss = mse_loss(reshape(sum(o, {1, 2}), {b.size()}), b.labels);
    loss.backward();
    return reshape(loss.detach(), {1});
  }
};

// A GraphStep body running net.step (no mixing draws).
template <class N>
GraphStep::Body step_of(N& net) {
  return [&net](const Batch& in, const Tensor&) { return std::vector<Tensor>{net.step(in)}; };
}

// Four Adam steps of a net uncaptured, then of a second one through a GraphStep (captured at the first, then
// replayed), from the same seed: the same losses, generator offset and weights.
template <class N>
void check_replays_equal_eager() {
  N eager, graphed;
  for (size_t i = 0; i < eager.params().size(); ++i) REQUIRE(eager.params()[i].data() != graphed.params()[i].data());
  AdamOptions o;
  o.lr = 1e-2f;
  Adam opt_e(eager.params(), o), opt_g(graphed.params(), o);
  GraphStep graph(graphed.params());
  manual_seed(5);
  std::vector<float> losses_eager;
  for (int k = 0; k < 4; ++k) {
    opt_e.zero_grad();
    losses_eager.push_back(eager.step(gpu_batch(32, 100 + k)).item());
    opt_e.step();
  }
  const uint64_t offset_eager = default_generator().offset;
  manual_seed(5);
  std::vector<float> losses_graph;
  for (int k = 0; k < 4; ++k) {
    const Batch b = gpu_batch(32, 100 + k);
    const std::vector<Tensor> v =
        graph.captured() ? graph.replay(b, Tensor()) : graph.capture(b, Tensor(), step_of(graphed));
    losses_graph.push_back(v[0].item());
    opt_g.step();
  }
  CHECK(graph.replays() == 4);
  CHECK(default_generator().offset == offset_eager);  // the host generator advanced as the eager steps did
  for (size_t k = 0; k < losses_eager.size(); ++k)
    CHECK(losses_graph[k] == doctest::Approx(losses_eager[k]).epsilon(1e-6));
  CHECK(losses_eager[1] != losses_eager[2]);  // different batches and masks: not one replayed value
  for (size_t i = 0; i < eager.params().size(); ++i)
    check_close(graphed.params()[i], eager.params()[i], 1e-6, 1e-7, "weights after four steps");
}

}  // namespace

TEST_CASE("cuda graph: replays equal uncaptured steps bit for bit, dropout included") {
  MSMIX_REQUIRE_GPU();
  SUBCASE("dropout op") { check_replays_equal_eager<Net>(); }
  SUBCASE("fused attention's dropout") { check_replays_equal_eager<AttentionNet>(); }
}

// Gradient accumulation (update_epochs > 1): six batches in groups of three, an Adam step after each group.
// The graphed run takes its first batch uncaptured and captures the second, mid-group, as the trainer does;
// the replays add into the same grads as the uncaptured backwards would.
TEST_CASE("cuda graph: with accumulation, replays add into the grads as uncaptured steps do") {
  MSMIX_REQUIRE_GPU();
  Net eager, graphed;
  AdamOptions o;
  o.lr = 1e-2f;
  Adam opt_e(eager.params(), o), opt_g(graphed.params(), o);
  GraphStep graph(graphed.params(), true);
  constexpr int kGroup = 3;
  manual_seed(6);
  std::vector<float> losses_eager;
  for (int k = 0; k < 2 * kGroup; ++k) {
    if (k % kGroup == 0) opt_e.zero_grad();
    losses_eager.push_back(eager.step(gpu_batch(16, 200 + k)).item());
    if (k % kGroup == kGroup - 1) opt_e.step();
  }
  manual_seed(6);
  std::vector<float> losses_graph;
  for (int k = 0; k < 2 * kGroup; ++k) {
    if (k % kGroup == 0) {
      if (graph.captured()) graph.zero_grads();
      else opt_g.zero_grad();
    }
    const Batch b = gpu_batch(16, 200 + k);
    Tensor v = k == 0 ? graphed.step(b)
               : graph.captured() ? graph.replay(b, Tensor())[0]
                                  : graph.capture(b, Tensor(), step_of(graphed))[0];
    losses_graph.push_back(v.item());
    if (k % kGroup == kGroup - 1) opt_g.step();
  }
  CHECK(graph.replays() == 2 * kGroup - 1);
  for (size_t k = 0; k < losses_eager.size(); ++k)
    CHECK(losses_graph[k] == doctest::Approx(losses_eager[k]).epsilon(1e-6));
  for (size_t i = 0; i < eager.params().size(); ++i) {
    check_close(graphed.params()[i].grad(), eager.params()[i].grad(), 1e-6, 1e-7, "the last group's grads");
    check_close(graphed.params()[i], eager.params()[i], 1e-6, 1e-7, "weights after two groups");
  }
  check_throws_with([] { GraphStep(std::vector<Tensor>{}).zero_grads(); }, {"zero_grads", "accumulates"});
}

TEST_CASE("cuda graph: a step that reads back cannot be captured and leaves nothing behind") {
  MSMIX_REQUIRE_GPU();
  Net net;
  GraphStep graph({net.w1, net.w2});
  manual_seed(9);
  const uint64_t before = default_generator().offset;
  check_throws_with([&] {
    graph.capture(gpu_batch(8, 1), Tensor(), [&](const Batch& in, const Tensor&) {
      Tensor v = net.step(in);
      (void)v.item();  // a read back inside the step
      return std::vector<Tensor>{v};
    });
  }, {"inside a captured CUDA graph step"});
  CHECK(!graph.captured());
  CHECK(!cuda::capturing());
  CHECK(default_generator().offset == before);
  CHECK(!net.w1.grad().defined());
  // The GPU works as before afterwards.
  Tensor x = gpu_leaf(leaf({5}, 3));
  check_close(mul(x, 2.0f), mul(leaf({5}, 3), 2.0f), 0, 0, "after the failed capture");
}

TEST_CASE("cuda graph: the op profiler's waits stand aside while a step is captured") {
  MSMIX_REQUIRE_GPU();
  Net net;
  GraphStep graph({net.w1, net.w2});
  OpProfile profile;
  profile.start(true, 1);  // every range waits for the GPU, except inside the capture
  Tensor v = graph.capture(gpu_batch(8, 1), Tensor(), step_of(net))[0];
  graph.replay(gpu_batch(8, 2), Tensor());
  profile.stop();
  CHECK(graph.captured());
  CHECK(std::isfinite(v.item()));
  bool matmul = false;
  for (const OpProfile::Entry& e : profile.entries()) matmul = matmul || e.name == "matmul";
  CHECK(matmul);  // the captured body's ranges were recorded (their host time)
}

// Whole runs: every epoch's losses and the test metrics equal with and without cuda_graph, and the graph
// replayed all full-size steps after the first (the last, smaller batch of each epoch runs uncaptured).
TEST_CASE("cuda graph: trainer runs with cuda_graph give the uncaptured run's numbers") {
  MSMIX_REQUIRE_GPU();
  struct Case {
    const char* model;
    std::vector<std::string> overrides;
    cuda::LstmKernel lstm;
    const char* mix = "none";
  };
  const std::vector<std::string> small = {"synthetic_scale=0.125", "synthetic_max_steps=4", "batch_size=8"};
  constexpr cuda::LstmKernel stepwise = cuda::LstmKernel::stepwise, persistent = cuda::LstmKernel::persistent,
                            cudnn = cuda::LstmKernel::cudnn;
  const std::vector<Case> cases = {
      {"lf_dnn", {}, stepwise},
      {"lf_dnn", {}, persistent},
      {"tfn", {"hidden_dims=[8,4,8]", "text_out=4", "post_fusion_dim=8", "grad_clip_norm=1"}, stepwise},
      {"lmf", {}, persistent},
      {"lf_dnn", {"update_epochs=3"}, persistent},  // accumulation: zeroed in place at each group's start
      {"mult",
       {"dst_feature_dim_nheads=[8,2]", "nlevels=1", "conv1d_kernel_size_l=1", "conv1d_kernel_size_a=1",
        "conv1d_kernel_size_v=1", "update_epochs=1"},
       stepwise},
      // Mixing: the draws are made on the host before each step and copied into the graph's input; MS-Mix
      // selects its pairs on the device (ops/pair_selection.h).
      {"tfn", {"hidden_dims=[8,4,8]", "text_out=4", "post_fusion_dim=8"}, persistent, "msmix"},
      {"lf_dnn", {}, persistent, "mixup"},
      {"lmf", {}, persistent, "manifold"},
      {"tfn", {"hidden_dims=[8,4,8]", "text_out=4", "post_fusion_dim=8", "mix_count=12"}, persistent, "multimix"},
      // cuDNN's LSTM (MSMIX_CUDA_LSTM=cudnn) inside the captured step, where the build has it.
      {"lf_dnn", {}, cudnn},
      {"tfn", {"hidden_dims=[8,4,8]", "text_out=4", "post_fusion_dim=8"}, cudnn, "msmix"},
      {"mult",
       {"dst_feature_dim_nheads=[8,2]", "nlevels=1", "conv1d_kernel_size_l=1", "conv1d_kernel_size_a=1",
        "conv1d_kernel_size_v=1", "update_epochs=2"},
       stepwise, "msmix"},
  };
  for (const Case& c : cases) {
    const std::string model = c.model, mix = c.mix;
    CAPTURE(model);
    CAPTURE(mix);
    CAPTURE(cuda::lstm_kernel_name(c.lstm));
    if (c.lstm == cudnn && !cuda::cudnn_compiled()) {
      MESSAGE("msmix was built without cuDNN: the cudnn case is skipped");
      continue;
    }
    LstmKernelScope scope(c.lstm);
    TrainResult runs[2];
    for (int graph = 0; graph < 2; ++graph) {
      RunSpec spec;
      spec.model = c.model;
      spec.data = "synthetic:mosi";
      spec.mix = c.mix;
      spec.seed = 1111;
      spec.device = "cuda";
      spec.max_epochs = 2;
      spec.overrides = small;
      spec.overrides.insert(spec.overrides.end(), c.overrides.begin(), c.overrides.end());
      spec.overrides.push_back(graph ? "cuda_graph=true" : "cuda_graph=false");
      Run run = prepared_run(spec);
      Trainer trainer(run.config, run.data);
      runs[graph] = trainer.fit();
      if (graph) {
        CAPTURE(trainer.graph_status());
        CHECK(trainer.graph_replays() >= 2 * (trainer.steps_per_epoch() - 1) - 1);
      }
    }
    REQUIRE(runs[0].log.size() == runs[1].log.size());
    for (size_t e = 0; e < runs[0].log.size(); ++e)
      for (const char* key : {"train_loss", "train_task_loss", "valid_loss", "train_mix_loss", "train_sal_loss"}) {
        CAPTURE(e);
        CAPTURE(key);
        REQUIRE(runs[0].log[e].contains(key) == runs[1].log[e].contains(key));
        if (!runs[0].log[e].contains(key)) continue;
        const double a = runs[0].log[e][key].get<double>(), b = runs[1].log[e][key].get<double>();
        CHECK(std::abs(a - b) <= 1e-6 * std::abs(a) + (std::string(key) == "valid_loss" ? 1e-4 : 0.0));
      }
    // What mixing did (log.jsonl's "mix"): the same pairs and ratios, whether the step was replayed or not.
    for (size_t e = 0; e < runs[0].log.size(); ++e) {
      CAPTURE(e);
      const Json& a = runs[0].log[e].value("mix", Json::object());
      const Json& b = runs[1].log[e].value("mix", Json::object());
      REQUIRE(a.size() == b.size());
      CHECK(a.empty() == (mix == "none"));
      for (const auto& [key, value] : a.items()) {
        CAPTURE(key);
        CHECK(b.at(key).get<double>() == doctest::Approx(value.get<double>()).epsilon(1e-5));
      }
    }
    REQUIRE(runs[1].test.size() == runs[0].test.size());
    for (size_t m = 0; m < runs[0].test.size(); ++m) {
      CAPTURE(runs[0].test[m].first);
      const double a = runs[0].test[m].second, b = runs[1].test[m].second;
      CHECK(((std::isnan(a) && std::isnan(b)) || b == doctest::Approx(a).epsilon(1e-4)));
    }
  }
}

TEST_CASE("cuda graph: GLoMo (device-drawn gate noise) and MISA without lengths replay; MISA with lengths falls back") {
  MSMIX_REQUIRE_GPU();
  struct Case {
    const char* model;
    const char* data;
    const char* refusal;  // in graph_status() when the step cannot be captured; null: it must be
    std::vector<std::string> overrides;
  };
  // Dropouts 0 for a refused capture: it must not leave the two runs apart through draws made before it.
  // Otherwise they stay on: a replay must redraw them (and GLoMo's gate noise) as an uncaptured step does.
  const std::vector<Case> cases = {
      {"glomo", "synthetic:mosi-aligned", nullptr, {"d_model=16", "num_heads=4", "encoder_layers=1", "fusion_ff=16"}},
      {"misa", "synthetic:mosi", "MISA",  // per-sample lengths, which its LSTMs read on the host
       {"hidden_size=16", "transformer_ff=32", "dropout=0", "transformer_dropout=0"}},
      {"misa", "synthetic:mosi-aligned", nullptr, {"hidden_size=16", "transformer_ff=32"}},  // no lengths: captured
  };
  for (const Case& c : cases) {
    CAPTURE(c.model);
    CAPTURE(c.data);
    TrainResult runs[2];
    for (int graph = 0; graph < 2; ++graph) {
      RunSpec spec;
      spec.model = c.model;
      spec.data = c.data;
      spec.mix = "msmix";
      spec.seed = 1111;
      spec.device = "cuda";
      spec.max_epochs = 2;
      spec.overrides = {"synthetic_scale=0.125", "synthetic_max_steps=4", "batch_size=8",
                        graph ? "cuda_graph=true" : "cuda_graph=false"};
      spec.overrides.insert(spec.overrides.end(), c.overrides.begin(), c.overrides.end());
      Run run = prepared_run(spec);
      Trainer trainer(run.config, run.data);
      runs[graph] = trainer.fit();
      if (graph && c.refusal) {
        CHECK(trainer.graph_replays() == 0);
        CHECK(trainer.graph_status().find(c.refusal) != std::string::npos);
      } else if (graph) {
        CHECK_MESSAGE(trainer.graph_replays() > 0, trainer.graph_status());
      }
    }
    REQUIRE(runs[0].log.size() == runs[1].log.size());
    for (size_t e = 0; e < runs[0].log.size(); ++e)
      for (const char* key : {"train_loss", "valid_loss"})
        CHECK(runs[0].log[e][key].get<double>() == doctest::Approx(runs[1].log[e][key].get<double>()).epsilon(1e-4));
  }
}
