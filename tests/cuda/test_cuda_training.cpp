// Training on the GPU: the optimizers' updates and gradient clipping against their CPU twins (bit for bit:
// the kernels avoid FMA contraction), and whole trainer runs (TFN, LF_DNN, LMF, MulT; with and without MS-Mix) whose
// per-epoch losses must equal the CPU run's within 1e-4. Skipped without a GPU.
#include <cmath>

#include "data/loader.h"
#include "data/synthetic.h"
#include "msmix/grad_clip.h"
#include "msmix/optimizer.h"
#include "msmix/trainer.h"
#include "tests/cuda/cuda_testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

// n parameters of odd sizes (one past a grid's worth of blocks) on the CPU, their GPU copies, and the same
// random grads attached to both.
struct ParamTwins {
  std::vector<Tensor> cpu, gpu;
};
ParamTwins make_params(uint64_t seed) {
  ParamTwins p;
  for (int64_t n : {1, 7, 1000, 65537}) {
    Tensor t = leaf({n}, seed++);
    p.cpu.push_back(t);
    p.gpu.push_back(gpu_leaf(t));
  }
  return p;
}
void set_grads(ParamTwins& p, uint64_t seed, float scale = 1) {
  for (size_t k = 0; k < p.cpu.size(); ++k) {
    Tensor g = leaf(p.cpu[k].shape(), seed + k, scale).detach();
    p.cpu[k].set_grad(g);
    p.gpu[k].set_grad(g.to(Device::cuda()));
  }
}
void require_equal(const ParamTwins& p, const std::string& what) {
  for (size_t k = 0; k < p.cpu.size(); ++k) {
    CAPTURE(what);
    CAPTURE(k);
    REQUIRE(p.gpu[k].is_cuda());
    std::vector<float> a = p.cpu[k].to_vector(), b = p.gpu[k].to_vector();
    int64_t differ = 0;
    for (size_t i = 0; i < a.size(); ++i) differ += !(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])));
    CHECK(differ == 0);
  }
}

template <class Opt, class Options>
void check_optimizer(const std::string& what, Options options) {
  ParamTwins p = make_params(10);
  Opt cpu_opt(p.cpu, options), gpu_opt(p.gpu, options);
  for (int step = 0; step < 5; ++step) {
    set_grads(p, 100 + 10 * step);
    cpu_opt.step();
    gpu_opt.step();
    require_equal(p, what + " step " + std::to_string(step));
  }
  // The state moves between devices through state_dict, as a checkpoint does.
  for (const auto& [name, t] : gpu_opt.state_dict())
    check_close(t.to(Device::cpu()), cpu_opt.state_dict().at(name), 0, 0, name);
}

}  // namespace

TEST_CASE("cuda optimizers: SGD, Adam and AdamW updates equal the CPU's bit for bit") {
  MSMIX_REQUIRE_GPU();
  SGDOptions sgd;
  sgd.lr = 0.1f;
  check_optimizer<SGD>("sgd plain", sgd);
  sgd.momentum = 0.9f, sgd.dampening = 0.1f, sgd.weight_decay = 0.01f;
  check_optimizer<SGD>("sgd momentum dampening decay", sgd);
  sgd.dampening = 0, sgd.nesterov = true;
  check_optimizer<SGD>("sgd nesterov", sgd);
  AdamOptions adam;
  adam.lr = 3e-3f;
  check_optimizer<Adam>("adam", adam);
  adam.weight_decay = 0.05f;
  check_optimizer<Adam>("adam l2", adam);
  check_optimizer<AdamW>("adamw", adam);
}

// Adam's one-launch update over all GPU tensors (cuda::adam_update_many): two groups with their own lr, a
// tensor that skips steps (no grad) so its step count and bias corrections differ from the others', sizes
// that end mid-chunk and span several chunks, and an empty one.
TEST_CASE("cuda optimizers: Adam's multi-tensor update equals the CPU's per-tensor one bit for bit") {
  MSMIX_REQUIRE_GPU();
  ParamTwins a = make_params(40), b;
  for (int64_t n : {0, 8193, 3 * 8192, 5}) {
    Tensor t = leaf({n}, uint64_t(60 + n));
    b.cpu.push_back(t);
    b.gpu.push_back(gpu_leaf(t));
  }
  AdamOptions o;
  o.lr = 2e-3f;
  o.weight_decay = 0.01f;
  Adam cpu_opt({ParamGroup{a.cpu}, ParamGroup{b.cpu, 5e-4f}}, o),
      gpu_opt({ParamGroup{a.gpu}, ParamGroup{b.gpu, 5e-4f}}, o);
  for (int step = 0; step < 6; ++step) {
    set_grads(a, 200 + 10 * step);
    set_grads(b, 300 + 10 * step);
    if (step % 2 == 1) {  // the 8193-element tensor sits this step out
      b.cpu[1].zero_grad();
      b.gpu[1].zero_grad();
    }
    cpu_opt.step();
    gpu_opt.step();
    require_equal(a, "group 0, step " + std::to_string(step));
    require_equal(b, "group 1, step " + std::to_string(step));
  }
  for (const auto& [name, t] : gpu_opt.state_dict())
    check_close(t.to(Device::cpu()), cpu_opt.state_dict().at(name), 0, 0, name);
}

TEST_CASE("cuda gradient clipping: by value and by norm equal the CPU") {
  MSMIX_REQUIRE_GPU();
  ParamTwins p = make_params(20);
  set_grads(p, 200, 3);
  clip_grad_value(p.cpu, 0.5f);
  clip_grad_value(p.gpu, 0.5f);
  for (size_t k = 0; k < p.cpu.size(); ++k) check_close(p.gpu[k].grad(), p.cpu[k].grad(), 0, 0, "clip value");

  set_grads(p, 300, 3);
  const Tensor norm_on_gpu = clip_grad_norm(p.gpu, 1.0f);
  CHECK(norm_on_gpu.is_cuda());
  const float norm_cpu = clip_grad_norm(p.cpu, 1.0f).item(), norm_gpu = norm_on_gpu.item();
  CHECK(norm_gpu == doctest::Approx(norm_cpu).epsilon(1e-6));
  CHECK(norm_cpu > 1.0f);  // it clipped
  for (size_t k = 0; k < p.cpu.size(); ++k) check_close(p.gpu[k].grad(), p.cpu[k].grad(), 1e-6, 1e-9, "clip norm");

  // Within max_norm: nothing scaled on either device (the GPU decides that without reading the norm back).
  set_grads(p, 400, 3);
  const float big = 1e6f;
  CHECK(clip_grad_norm(p.gpu, big).item() == doctest::Approx(clip_grad_norm(p.cpu, big).item()).epsilon(1e-6));
  for (size_t k = 0; k < p.cpu.size(); ++k) check_close(p.gpu[k].grad(), p.cpu[k].grad(), 0, 0, "under max_norm");

  // A NaN grad: the norm is reported and nothing is scaled, on both devices.
  Tensor bad = Tensor::from_vector({1.0f, NAN, 2.0f}, {3});
  Tensor pc = leaf({3}, 1), pg = gpu_leaf(pc);
  pc.set_grad(bad);
  pg.set_grad(bad.to(Device::cuda()));
  CHECK(std::isnan(clip_grad_norm({pc}, 1.0f).item()));
  CHECK(std::isnan(clip_grad_norm({pg}, 1.0f).item()));
  check_close(pg.grad(), bad, 0, 0, "untouched");
}

// The CPU runs go first and run without a GPU too, so a case that cannot run at all fails in CI.
TEST_CASE("cuda training: trainer runs on the GPU give the CPU's losses epoch by epoch") {
  const bool gpu = cuda::device_count() > 0;
  if (!gpu) MESSAGE("no GPU (" << cuda::runtime_info() << "): only the CPU runs");
  struct Case {
    const char* model;
    const char* mix;
    std::vector<std::string> overrides;
  };
  const std::vector<std::string> small = {"synthetic_scale=0.125", "synthetic_max_steps=4", "batch_size=8"};
  const std::vector<Case> cases = {
      {"tfn", "none", {"hidden_dims=[8,4,8]", "text_out=4", "post_fusion_dim=8"}},
      {"tfn", "msmix", {"hidden_dims=[8,4,8]", "text_out=4", "post_fusion_dim=8"}},
      {"lf_dnn", "mixup", {}},
      {"lf_dnn", "multimix", {"mix_count=12"}},  // 12 mixed from each batch of 8: fusion on 20 rows
      {"lmf", "none", {}},
      {"mult", "msmix",  // MulT clips grads by value; 4-step synthetic sequences need kernel size 1
       {"dst_feature_dim_nheads=[8,2]", "nlevels=1", "conv1d_kernel_size_l=1", "conv1d_kernel_size_a=1",
        "conv1d_kernel_size_v=1"}},
      {"almt", "msmix",  // AdamW, MSE, the per-epoch schedule (warmup shortened so epoch 2 trains at full lr)
       {"dst_feature_dims=16", "dst_feature_hidden_dims=16", "fusion_hidden_d=16", "warmup_epochs=1"}},
      {"misa", "msmix",  // BiLSTMs over each sample's length, the regularisers on the originals, grads accumulated
       {"hidden_size=16", "transformer_ff=32"}},
      {"glomo", "msmix",  // the experts' noisy gates (Philox draws: the CPU's numbers on the GPU), local vectors mixed
       {"d_model=16", "num_heads=4", "encoder_layers=1", "fusion_ff=16", "learning_rate=1e-3",
        "need_data_aligned=false"}},  // synthetic:mosi is unaligned; GLoMo runs on it all the same
  };
  for (const Case& c : cases) {
    CAPTURE(c.model);
    CAPTURE(c.mix);
    std::vector<Json> logs[2];
    for (int d = 0; d < (gpu ? 2 : 1); ++d) {
      RunSpec spec;
      spec.model = c.model;
      spec.data = "synthetic:mosi";
      spec.mix = c.mix;
      spec.seed = 1111;
      spec.device = d == 0 ? "cpu" : "cuda";
      spec.max_epochs = 2;
      spec.overrides = small;
      spec.overrides.insert(spec.overrides.end(), c.overrides.begin(), c.overrides.end());
      Config config = make_run_config(spec);
      Dataset data = load_data(config);
      prepare_data(data, config);
      Trainer trainer(config, data);
      REQUIRE(trainer.device().is_cuda() == (d == 1));
      logs[d] = trainer.fit().log;
      REQUIRE(logs[d].size() == 2);
    }
    if (!gpu) continue;
    REQUIRE(logs[0].size() == logs[1].size());
    for (size_t e = 0; e < logs[0].size(); ++e) {
      CAPTURE(e);
      for (const char* key : {"train_loss", "train_task_loss", "valid_loss"}) {
        CAPTURE(key);
        const double a = logs[0][e][key].get<double>(), b = logs[1][e][key].get<double>();
        CHECK(std::isfinite(b));
        const double rounding = std::string(key) == "valid_loss" ? 1e-4 : 0;  // MMSA rounds it to 4 decimals
        CHECK(std::abs(a - b) <= 1e-4 * std::abs(a) + 1e-6 + rounding);
      }
    }
  }
}

TEST_CASE("cuda loader: batches gathered on the GPU from the uploaded split equal the host-gathered ones") {
  MSMIX_REQUIRE_GPU();
  SyntheticOptions o;
  o.size_scale = 0.25, o.max_steps = 6;
  for (const char* name : {"mosi", "sims"}) {
    CAPTURE(name);
    const SyntheticDataset synthetic = make_synthetic(name, 1111, o);
    const Split& split = synthetic.dataset.train;
    Loader host(split, 7, /*shuffle=*/true, 1111), gpu(split, 7, /*shuffle=*/true, 1111, false, Device::cuda());
    Batch a, b;
    int64_t batches = 0;
    while (host.next(a)) {
      REQUIRE(gpu.next(b));
      CHECK(b.labels.is_cuda());
      check_close(b.text, a.text, 0, 0, "text");
      check_close(b.audio, a.audio, 0, 0, "audio");
      check_close(b.vision, a.vision, 0, 0, "vision");
      check_close(b.labels, a.labels, 0, 0, "labels");
      if (a.labels_t.defined()) check_close(b.labels_t, a.labels_t, 0, 0, "labels_t");
      CHECK(b.audio_lengths == a.audio_lengths);
      CHECK(b.ids == a.ids);
      CHECK(b.indices == a.indices);
      ++batches;
    }
    CHECK(!gpu.next(b));
    CHECK(batches == host.batches_per_epoch());
  }
}
