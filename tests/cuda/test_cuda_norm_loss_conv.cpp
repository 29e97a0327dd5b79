// CUDA batch_norm (training with running stats, eval), the losses and conv1d against their CPU twins, forward
// and backward, on odd sizes, size 1 and empty batches; then a small conv / batch-norm / embedding network
// trained for a few SGD steps on both devices, whose losses must agree. Skipped without a GPU.
#include <array>
#include <cmath>

#include "tests/cuda/cuda_testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

Tensor positive(const Shape& shape, uint64_t seed, float lo, float hi) {
  Generator gen(seed);
  Tensor t = Tensor::rand(shape, gen, lo, hi);
  t.set_requires_grad(true);
  return t;
}

Tensor classes(int64_t N, int64_t C, uint64_t seed) {
  Generator gen(seed);
  std::vector<float> v = Tensor::rand({N}, gen, 0.0f, float(C)).to_vector();
  for (float& x : v) x = std::min(float(C - 1), std::floor(x));
  return Tensor::from_vector(v, {N});
}

}  // namespace

TEST_CASE("cuda batch_norm: training and eval forward, grads and running stats match the CPU") {
  MSMIX_REQUIRE_GPU();
  uint64_t seed = 2000;
  for (Shape shape : {Shape{8, 3}, Shape{5, 7, 9}, Shape{2, 1, 1}, Shape{64, 33, 50}, Shape{1, 4, 3}, Shape{300, 5}}) {
    const int64_t C = shape[1], M = shape[0] * (shape.size() == 3 ? shape[2] : 1);
    const Tol fwd{1e-4, 1e-5}, bwd = reduction_tol(M);
    for (bool training : {true, false}) {
      for (bool affine : {true, false}) {
        Tensor x = leaf(shape, seed++, 1.5f, 0.3f);
        Tensor rm = leaf({C}, seed++, 0.2f).detach(), rv = positive({C}, seed++, 0.5f, 2.0f).detach();
        Tensor rm_gpu = rm.to(Device::cuda()), rv_gpu = rv.to(Device::cuda());
        std::vector<Tensor> in = {x};
        if (affine) in.push_back(positive({C}, seed++, 0.5f, 1.5f)), in.push_back(leaf({C}, seed++));
        Fn f = [&, affine, training](const std::vector<Tensor>& t) {
          const bool gpu = t[0].is_cuda();
          return batch_norm(t[0], affine ? t[1] : Tensor(), affine ? t[2] : Tensor(), gpu ? rm_gpu : rm,
                            gpu ? rv_gpu : rv, training, 0.1f, 1e-5f);
        };
        check_twins(fmt::format("batch_norm {} training {} affine {}", shape_str(shape), training, affine), f, in,
                    fwd, bwd);
        // The running stats moved (training) or stayed (eval) alike on both devices.
        check_close(rm_gpu, rm, 1e-5, 1e-6, "running_mean");
        check_close(rv_gpu, rv, 1e-5, 1e-6, "running_var");
      }
    }
  }
  // Without running stats: batch statistics even in eval (track_running_stats=False).
  check_twins("batch_norm no running stats",
              [](const std::vector<Tensor>& t) { return batch_norm(t[0], t[1], t[2], Tensor(), Tensor(), false); },
              {leaf({6, 4, 5}, seed++), leaf({4}, seed++), leaf({4}, seed++)}, Tol{1e-4, 1e-5}, reduction_tol(30));
  // An empty batch in eval: an empty output, zero grads for the affine parameters.
  Tensor rm = Tensor::zeros({3}), rv = Tensor::ones({3});
  Tensor rm_gpu = rm.to(Device::cuda()), rv_gpu = rv.to(Device::cuda());
  check_twins("batch_norm empty batch eval",
              [&](const std::vector<Tensor>& t) {
                const bool gpu = t[0].is_cuda();
                return batch_norm(t[0], t[1], t[2], gpu ? rm_gpu : rm, gpu ? rv_gpu : rv, false);
              },
              {leaf({0, 3, 4}, seed++), leaf({3}, seed++), leaf({3}, seed++)}, kElementwise, kElementwise);
}

TEST_CASE("cuda losses: l1, mse, smooth_l1, kl_div and cross_entropy match the CPU in every reduction") {
  MSMIX_REQUIRE_GPU();
  uint64_t seed = 2100;
  for (Shape shape : {Shape{1}, Shape{7, 3}, Shape{4099}, Shape{0, 2}, Shape{5, 1, 9}}) {
    const int64_t n = shape_numel(shape);
    for (Reduction r : {Reduction::None, Reduction::Sum, Reduction::Mean}) {
      if (r == Reduction::Mean && n == 0) continue;  // mean over nothing is an error on both devices
      const Tol tol = r == Reduction::None ? kElementwise : reduction_tol(n);
      const std::string where = shape_str(shape) + " reduction " + std::to_string(int(r));
      // Differences of about 1.4 in spread: both sides of smooth_l1's betas.
      Tensor p = leaf(shape, seed++), t = leaf(shape, seed++, 1.0f);
      check_twins("l1 " + where, [r](const std::vector<Tensor>& x) { return l1_loss(x[0], x[1], r); }, {p, t}, tol,
                  kElementwise);
      check_twins("mse " + where, [r](const std::vector<Tensor>& x) { return mse_loss(x[0], x[1], r); }, {p, t}, tol,
                  kElementwise);
      for (float beta : {1.0f, 0.25f, 0.0f})
        check_twins("smooth_l1 beta " + std::to_string(beta) + " " + where,
                    [r, beta](const std::vector<Tensor>& x) { return smooth_l1_loss(x[0], x[1], beta, r); }, {p, t},
                    tol, kElementwise);
    }
    // kl_div: log-probabilities against probabilities, some exactly 0.
    std::vector<float> tv = positive(shape, seed++, 0.0f, 1.0f).to_vector();
    for (size_t i = 0; i < tv.size(); i += 4) tv[i] = 0;
    Tensor target = Tensor::from_vector(tv, shape);
    target.set_requires_grad(true);
    Tensor logp = leaf(shape, seed++, 0.5f, -1.0f);
    for (Reduction r : {Reduction::None, Reduction::Sum, Reduction::BatchMean}) {
      if (r == Reduction::BatchMean && (shape.empty() || shape[0] == 0)) continue;
      check_twins("kl_div " + shape_str(shape), [r](const std::vector<Tensor>& x) { return kl_div(x[0], x[1], r); },
                  {logp, target}, r == Reduction::None ? kElementwise : reduction_tol(n), kElementwise);
    }
  }
  // cross_entropy: rows of odd widths, one class, one row, a long row; logits spread wide. gx = g * (p - [c == t])
  // carries |g| times lse's rounding (a log of a C-term sum), hence the absolute 1e-5 for the grads.
  for (auto [N, C] : std::vector<std::array<int64_t, 2>>{{1, 1}, {7, 3}, {33, 10}, {2, 1000}, {300, 2}, {0, 5}}) {
    Tensor logits = leaf({N, C}, seed++, 4.0f), target = classes(N, C, seed++);
    for (Reduction r : {Reduction::None, Reduction::Sum, Reduction::Mean}) {
      if (r == Reduction::Mean && N == 0) continue;
      check_twins(fmt::format("cross_entropy N {} C {} reduction {}", N, C, int(r)),
                  [r](const std::vector<Tensor>& x) { return cross_entropy(x[0], x[1], r); }, {logits, target},
                  r == Reduction::None ? Tol{1e-4, 1e-5} : reduction_tol(N * C), Tol{1e-4, 1e-5});
    }
  }
  Tensor logits = Tensor::zeros({2, 3}, Device::cuda()), bad = Tensor::from_vector({0, 3}, {2}).to(Device::cuda());
  check_throws_with([&] { cross_entropy(logits, bad); }, {"cross_entropy", "target[1] = 3", "[0, 3)"});
}

// conv1d's cases, each with and without a bias, against the CPU (forward: sums of Cin * K products; grads: of
// Cout * K (gx), N * Lout (gweight, gbias) products); with same_bits, two GPU runs compared bit for bit too.
namespace {

using ConvCase = std::array<int64_t, 6>;  // N, Cin, L, Cout, K, padding
// Odd sizes, size 1, an empty batch, padding up to K - 1 and a kernel longer than the input.
const std::vector<ConvCase> kOddConvCases = {{2, 3, 10, 4, 3, 1}, {1, 1, 1, 1, 1, 0}, {5, 7, 33, 9, 5, 2},
                                             {3, 4, 6, 2, 6, 0},  {0, 3, 5, 2, 2, 0}, {4, 2, 3, 5, 7, 3}};

void check_conv_cases(const std::string& what, const std::vector<ConvCase>& cases, uint64_t seed, bool same_bits) {
  for (auto [N, Cin, L, Cout, K, pad] : cases) {
    for (bool with_bias : {true, false}) {
      std::vector<Tensor> in = {leaf({N, Cin, L}, seed++), leaf({Cout, Cin, K}, seed++, 0.3f)};
      if (with_bias) in.push_back(leaf({Cout}, seed++));
      const int64_t padding = pad, Lout = L + 2 * pad - K + 1;
      const std::string name =
          fmt::format("{} N {} Cin {} L {} Cout {} K {} pad {} bias {}", what, N, Cin, L, Cout, K, pad, with_bias);
      Fn f = [with_bias, padding](const std::vector<Tensor>& t) {
        return conv1d(t[0], t[1], with_bias ? t[2] : Tensor(), padding);
      };
      check_twins(name, f, in, reduction_tol(Cin * K), reduction_tol(std::max(Cout * K, N * Lout)));
      if (!same_bits || N == 0) continue;
      std::vector<std::vector<float>> runs[2];
      for (auto& run : runs) {
        std::vector<Tensor> gpu;
        for (const Tensor& t : in) gpu.push_back(gpu_leaf(t));
        Tensor y = f(gpu);
        Generator gen(12);
        y.backward(Tensor::randn(y.shape(), gen).to(Device::cuda()));
        run.push_back(y.to_vector());
        for (const Tensor& t : gpu) run.push_back(t.grad().to_vector());
      }
      for (size_t i = 0; i < runs[0].size(); ++i) {
        CAPTURE(name);
        CAPTURE(i);  // the output, then the grads of x, weight(, bias)
        CHECK(runs[0][i] == runs[1][i]);
      }
    }
  }
}

}  // namespace

TEST_CASE("cuda conv1d: forward and the x, weight and bias grads match the CPU") {
  MSMIX_REQUIRE_GPU();
  // The last case needs two im2col chunks (Cin * K * Lout * N > 2^24).
  std::vector<ConvCase> cases = kOddConvCases;
  cases.insert(cases.end(), {{16, 30, 50, 30, 1, 0}, {100, 64, 1000, 8, 3, 1}});
  check_conv_cases("conv1d", cases, 2200, false);
}

// MSMIX_CUDA_CONV=cudnn: x, y and the weight's grad through cuDNN's convolution (the bias stays ours), on odd
// shapes and MulT's input projections (768 -> 50 at L 50, 20 -> 50 at L 500, K 5), with the same bits on a
// second run (cuDNN's deterministic algorithms only: msmix's reproducibility rule). N = 0 stays with our
// kernels (nothing for cuDNN to do).
TEST_CASE("cuda conv1d with MSMIX_CUDA_CONV=cudnn: equals the CPU, the same bits each run") {
  MSMIX_REQUIRE_GPU();
  if (skip_without_cudnn()) return;
  ConvKernelScope scope(cuda::ConvKernel::cudnn);
  std::vector<ConvCase> cases = kOddConvCases;
  cases.insert(cases.end(), {{16, 768, 50, 50, 5, 0}, {16, 20, 500, 50, 5, 0}});
  check_conv_cases("cudnn conv1d", cases, 2300, true);
}

TEST_CASE("cuda end to end: a conv / batch_norm / embedding network trains the same on both devices") {
  MSMIX_REQUIRE_GPU();
  // x [8, 5, 12] -> conv1d (pad 1) -> batch_norm (running stats) -> relu -> [8, 12, 6] -> concat with an
  // embedding of ids [8, 12] -> linear to 3 classes per step -> cross_entropy; 4 SGD steps, lr 0.1.
  struct Net {
    std::vector<Tensor> params;
    Tensor rm, rv;
  };
  auto make = [](Device dev) {
    Net n;
    uint64_t seed = 2300;
    for (Shape s : {Shape{6, 5, 3}, Shape{6}, Shape{6}, Shape{6}, Shape{10, 4}, Shape{3, 10}, Shape{3}}) {
      Tensor p = leaf(s, seed++, 0.4f).detach().to(dev);
      p.set_requires_grad(true);
      n.params.push_back(p);
    }
    n.rm = Tensor::zeros({6}, dev);
    n.rv = Tensor::ones({6}, dev);
    return n;
  };
  Generator gen(2400);
  const Tensor x = Tensor::randn({8, 5, 12}, gen);
  Tensor ids = Tensor::rand({8, 12}, gen, 0.0f, 10.0f), target = Tensor::rand({96}, gen, 0.0f, 3.0f);
  ids = Tensor::from_vector(
      [&] {
        auto v = ids.to_vector();
        for (float& f : v) f = std::floor(f);
        return v;
      }(),
      {8, 12});
  target = Tensor::from_vector([&] { auto v = target.to_vector(); for (float& f : v) f = std::floor(f); return v; }(),
                               {96});
  auto loss_of = [&](Net& n, Device dev) {
    const std::vector<Tensor>& p = n.params;
    Tensor h = conv1d(x.to(dev), p[0], p[1], 1);
    h = relu(batch_norm(h, p[2], p[3], n.rm, n.rv, true));
    h = transpose(h, 1, 2);                                           // [8, 12, 6]
    h = concat({h, embedding(ids.to(dev), p[4])}, 2);                 // [8, 12, 10]
    Tensor logits = linear(reshape(h, {96, 10}), p[5], p[6]);        // [96, 3]
    return cross_entropy(logits, target.to(dev));
  };
  Net cpu = make(Device::cpu()), gpu = make(Device::cuda());
  for (int step = 0; step < 4; ++step) {
    CAPTURE(step);
    Tensor lc = loss_of(cpu, Device::cpu()), lg = loss_of(gpu, Device::cuda());
    CHECK(std::fabs(lc.item() - lg.item()) <= 1e-4 * std::max(1.0f, std::fabs(lc.item())));
    lc.backward();
    lg.backward();
    for (size_t k = 0; k < cpu.params.size(); ++k) {
      CAPTURE(k);
      check_close(gpu.params[k].grad(), cpu.params[k].grad(), 1e-3, 1e-4, "grad");
      for (Net* n : {&cpu, &gpu}) {
        Tensor& q = n->params[k];
        Tensor next = sub(q.detach(), mul(q.grad(), 0.1f)).detach();
        next.set_requires_grad(true);
        q = next;
      }
    }
    check_close(gpu.rm, cpu.rm, 1e-4, 1e-5, "running_mean");
    check_close(gpu.rv, cpu.rv, 1e-4, 1e-5, "running_var");
  }
}
