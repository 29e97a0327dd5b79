#include "ops/cpu/conv.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

struct ConvCase {
  int64_t N, Cin, L, Cout, K, padding;
  bool bias;
};

// The direct-loop reference kernel on the same inputs.
std::vector<float> naive_conv1d(const Tensor& x, const Tensor& w, const Tensor& b, int64_t padding) {
  const int64_t N = x.size(0), Cin = x.size(1), L = x.size(2), Cout = w.size(0), K = w.size(2);
  cpu::Conv1dShape s{N, Cin, L, Cout, K, padding, L + 2 * padding - K + 1};
  std::vector<float> y(size_t(N * Cout * s.Lout));
  cpu::conv1d_forward_naive(x.data(), w.data(), b.defined() ? b.data() : nullptr, y.data(), s);
  return y;
}

std::vector<float> part(const std::vector<float>& v, int64_t start, int64_t count) {
  return std::vector<float>(v.begin() + start, v.begin() + start + count);
}

}  // namespace

TEST_CASE("conv1d: the direct-loop reference on a hand-computed case") {
  // y[t] = x[t - 1] - x[t + 1] with zero padding 1: x = {1, 2, 3} -> {0 - 2, 1 - 3, 2 - 0}, + bias 0.5.
  Tensor x = Tensor::from_vector({1, 2, 3}, {1, 1, 3}), w = Tensor::from_vector({1, 0, -1}, {1, 1, 3});
  Tensor b = Tensor::from_vector({0.5f}, {1});
  CHECK(naive_conv1d(x, w, b, 1) == std::vector<float>{-1.5f, -1.5f, 2.5f});
  CHECK(conv1d(x, w, b, 1).to_vector() == std::vector<float>{-1.5f, -1.5f, 2.5f});
}

TEST_CASE("conv1d: im2col + GEMM forward against the direct loops") {
  std::vector<ConvCase> cases = {
      {2, 3, 10, 4, 1, 0, true},  {2, 3, 10, 4, 5, 0, true}, {2, 3, 10, 4, 5, 2, false}, {3, 1, 7, 2, 3, 1, true},
      {1, 2, 4, 3, 5, 2, true},   // kernel wider than L, fits once padded
      {2, 5, 6, 1, 1, 2, false},  // K = 1 with padding: zero columns at both ends
      {4, 16, 50, 8, 3, 1, true},
  };
  for (const ConvCase& c : cases) {
    INFO("N=" << c.N << " Cin=" << c.Cin << " L=" << c.L << " Cout=" << c.Cout << " K=" << c.K
              << " padding=" << c.padding);
    Tensor x = leaf({c.N, c.Cin, c.L}, 1), w = leaf({c.Cout, c.Cin, c.K}, 2, 0.5f);
    Tensor b = c.bias ? leaf({c.Cout}, 3) : Tensor();
    Tensor y = conv1d(x, w, b, c.padding);
    CHECK(y.shape() == Shape{c.N, c.Cout, c.L + 2 * c.padding - c.K + 1});
    check_close(y.to_vector(), naive_conv1d(x, w, b, c.padding), 1e-4, 1e-5);
  }
  // No samples: an empty output of the right shape.
  CHECK(conv1d(Tensor::zeros({0, 3, 5}), Tensor::zeros({4, 3, 3}), Tensor(), 0).shape() == Shape{0, 4, 3});
}

TEST_CASE("conv1d: gradients for x, weight and bias") {
  auto conv = [](int64_t padding) {
    return
        [padding](const std::vector<Tensor>& v) { return conv1d(v[0], v[1], v.size() > 2 ? v[2] : Tensor(), padding); };
  };
  check_gradients(conv(1), {leaf({2, 3, 6}, 10), leaf({4, 3, 3}, 11), leaf({4}, 12)});
  check_gradients(conv(2), {leaf({2, 2, 5}, 13), leaf({3, 2, 5}, 14), leaf({3}, 15)});
  check_gradients(conv(0), {leaf({2, 1, 5}, 16), leaf({2, 1, 1}, 17)});  // K = 1, Cin = 1, no bias
  check_gradients(conv(0), {leaf({3, 2, 7}, 18), leaf({2, 2, 5}, 19), leaf({2}, 20)});
  // Only the weight wants a grad (a frozen input): gx is skipped.
  Tensor frozen = leaf({2, 3, 6}, 21).detach();
  check_gradients([frozen](const std::vector<Tensor>& v) { return conv1d(frozen, v[0], Tensor(), 1); },
                  {leaf({2, 3, 3}, 22)});
}

TEST_CASE("conv1d: samples split over several im2col chunks give the per-sample results") {
  // Cin * K * Lout = 2M floats per sample: the 4M-float im2col buffer holds two samples, so three samples
  // take two chunks, and gweight accumulates across them.
  const int64_t N = 3, Cin = 64, K = 8, Lout = 4096, L = Lout + K - 1, Cout = 2;
  Tensor x = leaf({N, Cin, L}, 30), w = leaf({Cout, Cin, K}, 31, 0.1f), b = leaf({Cout}, 32);
  Tensor y = conv1d(x, w, b, 0);
  check_close(y.to_vector(), naive_conv1d(x, w, b, 0), 1e-4, 1e-4, "forward");
  Generator gen(33);
  Tensor g = Tensor::randn(y.shape(), gen);
  y.backward(g);
  std::vector<float> xs = x.to_vector(), gs = g.to_vector(), gx = x.grad().to_vector();
  std::vector<double> gw_sum(size_t(w.numel()), 0.0), gb_sum(Cout, 0.0);
  for (int64_t n = 0; n < N; ++n) {
    Tensor xn = Tensor::from_vector(part(xs, n * Cin * L, Cin * L), {1, Cin, L}).set_requires_grad();
    Tensor wn = w.detach().clone().set_requires_grad(), bn = b.detach().clone().set_requires_grad();
    conv1d(xn, wn, bn, 0).backward(Tensor::from_vector(part(gs, n * Cout * Lout, Cout * Lout), {1, Cout, Lout}));
    check_close(part(gx, n * Cin * L, Cin * L), xn.grad().to_vector(), 1e-4, 1e-5, "gx of sample " + std::to_string(n));
    std::vector<float> gwn = wn.grad().to_vector(), gbn = bn.grad().to_vector();
    for (size_t i = 0; i < gwn.size(); ++i) gw_sum[i] += gwn[i];
    for (int64_t i = 0; i < Cout; ++i) gb_sum[i] += gbn[i];
  }
  check_close(w.grad().to_vector(), std::vector<float>(gw_sum.begin(), gw_sum.end()), 1e-4, 1e-3, "gweight");
  check_close(b.grad().to_vector(), std::vector<float>(gb_sum.begin(), gb_sum.end()), 1e-4, 1e-3, "gbias");
}

TEST_CASE("conv1d: errors") {
  check_throws_with([] { conv1d(Tensor::zeros({2, 3, 1}), Tensor::zeros({4, 3, 5}), Tensor(), 0); },
                    {"conv1d: kernel size 5 is wider than the padded input length 1 (L=1, padding=0)"});
  check_throws_with([] { conv1d(Tensor::zeros({2, 3, 1}), Tensor::zeros({4, 3, 5}), Tensor(), 1); },
                    {"kernel size 5", "padded input length 3 (L=1, padding=1)"});
  check_throws_with([] { conv1d(Tensor::zeros({2, 4, 10}), Tensor::zeros({4, 3, 5}), Tensor(), 0); },
                    {"conv1d", "[4, 3, 5]", "[2, 4, 10]", "input channels"});
  check_throws_with([] { conv1d(Tensor::zeros({2, 3, 10}), Tensor::zeros({4, 3, 5}), Tensor::zeros({3}), 0); },
                    {"conv1d", "bias [3]"});
  check_throws_with([] { conv1d(Tensor::zeros({3, 10}), Tensor::zeros({4, 3, 5}), Tensor(), 0); },
                    {"conv1d", "[N, Cin, L]", "[3, 10]"});
  check_throws_with([] { conv1d(Tensor::zeros({2, 3, 10}), Tensor::zeros({4, 3, 5}), Tensor(), -1); },
                    {"conv1d", "padding"});
}
