#include <cmath>

#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

// Layer norm of each row of x [R, C] in double: (x - mean) / sqrt(biased var + eps) * weight + bias.
std::vector<float> naive_layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  const int64_t C = x.size(-1), R = x.numel() / C;
  std::vector<float> v = x.to_vector(), out(v.size());
  std::vector<float> w = weight.defined() ? weight.to_vector() : std::vector<float>(C, 1.0f);
  std::vector<float> b = bias.defined() ? bias.to_vector() : std::vector<float>(C, 0.0f);
  for (int64_t r = 0; r < R; ++r) {
    double m = 0, var = 0;
    for (int64_t c = 0; c < C; ++c) m += v[r * C + c];
    m /= C;
    for (int64_t c = 0; c < C; ++c) var += (v[r * C + c] - m) * (v[r * C + c] - m);
    var /= C;
    for (int64_t c = 0; c < C; ++c) out[r * C + c] = float((v[r * C + c] - m) / std::sqrt(var + eps) * w[c] + b[c]);
  }
  return out;
}

// Per-channel batch mean and variance (biased or unbiased) of x [N, C] or [N, C, L], in double.
struct ChannelStats {
  std::vector<double> mean, var_biased, var_unbiased;
};
ChannelStats naive_channel_stats(const Tensor& x) {
  const int64_t N = x.size(0), C = x.size(1), L = x.dim() == 3 ? x.size(2) : 1, M = N * L;
  std::vector<float> v = x.to_vector();
  ChannelStats s{std::vector<double>(C), std::vector<double>(C), std::vector<double>(C)};
  for (int64_t c = 0; c < C; ++c) {
    double m = 0, ss = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) m += v[(n * C + c) * L + l];
    m /= M;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) ss += (v[(n * C + c) * L + l] - m) * (v[(n * C + c) * L + l] - m);
    s.mean[c] = m;
    s.var_biased[c] = ss / M;
    s.var_unbiased[c] = ss / (M - 1);
  }
  return s;
}

// (x - mean[c]) / sqrt(var[c] + eps) * weight[c] + bias[c] for x [N, C] or [N, C, L].
std::vector<float> naive_batch_norm(const Tensor& x, const std::vector<double>& mean, const std::vector<double>& var,
                                    const Tensor& weight, const Tensor& bias, double eps) {
  const int64_t N = x.size(0), C = x.size(1), L = x.dim() == 3 ? x.size(2) : 1;
  std::vector<float> v = x.to_vector(), out(v.size());
  std::vector<float> w = weight.defined() ? weight.to_vector() : std::vector<float>(C, 1.0f);
  std::vector<float> b = bias.defined() ? bias.to_vector() : std::vector<float>(C, 0.0f);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t l = 0; l < L; ++l) {
        int64_t i = (n * C + c) * L + l;
        out[i] = float((v[i] - mean[c]) / std::sqrt(var[c] + eps) * w[c] + b[c]);
      }
  return out;
}

std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

}  // namespace

TEST_CASE("layer_norm: forward against a double-precision reference") {
  for (Shape shape : {Shape{4, 768}, Shape{5, 1}, Shape{2, 3, 7}, Shape{1, 33}}) {
    CAPTURE(shape_str(shape));
    const int64_t C = shape.back();
    Tensor x = leaf(shape, 1, 2.0f, 0.5f), w = leaf({C}, 2), b = leaf({C}, 3);
    check_close(layer_norm(x, w, b).to_vector(), naive_layer_norm(x, w, b, 1e-5), 1e-4, 1e-5, "affine");
    check_close(layer_norm(x, Tensor(), Tensor()).to_vector(), naive_layer_norm(x, Tensor(), Tensor(), 1e-5), 1e-4,
                1e-5, "no affine");
    check_close(layer_norm(x, w, Tensor(), 0.1f).to_vector(), naive_layer_norm(x, w, Tensor(), 0.1), 1e-4, 1e-5,
                "weight only, eps 0.1");
    check_close(layer_norm(x, Tensor(), b).to_vector(), naive_layer_norm(x, Tensor(), b, 1e-5), 1e-4, 1e-5,
                "bias only");
  }
  // Width 1: every value is its row's mean, so the output is the bias.
  Tensor x = Tensor::from_vector({3, -7}, {2, 1}), b = Tensor::from_vector({0.25f}, {1});
  CHECK(layer_norm(x, Tensor::ones({1}), b).to_vector() == std::vector<float>{0.25f, 0.25f});
  // A large offset does not destroy the variance (two-pass statistics).
  Tensor shifted = Tensor::from_vector({1e4f + 1, 1e4f - 1}, {1, 2});
  check_close(layer_norm(shifted, Tensor(), Tensor(), 0).to_vector(), {1, -1}, 1e-5, 1e-5);
  CHECK(layer_norm(Tensor::zeros({0, 4}), Tensor(), Tensor()).shape() == Shape{0, 4});
}

TEST_CASE("layer_norm: gradients for x, weight, bias") {
  auto ln = [](const std::vector<Tensor>& v) { return layer_norm(v[0], v[1], v[2]); };
  check_gradients(ln, {leaf({3, 6}, 4, 1.5f), leaf({6}, 5), leaf({6}, 6)});
  check_gradients(ln, {leaf({2, 2, 5}, 7), leaf({5}, 8), leaf({5}, 9)});
  check_gradients(ln, {leaf({4, 1}, 10), leaf({1}, 11), leaf({1}, 12)});
  // Width 768: a perturbed element moves the row statistics by 1/768; a wider step keeps rounding small.
  check_gradients(ln, {leaf({2, 768}, 13), leaf({768}, 14), leaf({768}, 15)}, 1e-2);
  // Many rows: the gweight / gbias partial sums span several chunks.
  check_gradients([](const std::vector<Tensor>& v) { return layer_norm(v[0], v[1], v[2]); },
                  {leaf({150, 3}, 16).detach(), leaf({3}, 17), leaf({3}, 18)});
  // No affine, and grads for a subset of the inputs.
  check_gradients([](const std::vector<Tensor>& v) { return layer_norm(v[0], Tensor(), Tensor()); },
                  {leaf({3, 4}, 19)});
  Tensor frozen_x = leaf({3, 4}, 20).detach();
  check_gradients([frozen_x](const std::vector<Tensor>& v) { return layer_norm(frozen_x, v[0], Tensor()); },
                  {leaf({4}, 21)});
}

TEST_CASE("layer_norm: errors") {
  check_throws_with([] { layer_norm(Tensor::zeros({2, 4}), Tensor::ones({5}), Tensor()); },
                    {"layer_norm", "weight [5]", "[2, 4]"});
  check_throws_with([] { layer_norm(Tensor::zeros({2, 4}), Tensor(), Tensor::ones({4, 1})); }, {"layer_norm", "bias"});
  check_throws_with([] { layer_norm(Tensor::scalar(1), Tensor(), Tensor()); }, {"layer_norm", "at least one dim"});
}

TEST_CASE("batch_norm: training and eval forward against a naive reference, both ranks") {
  for (Shape shape : {Shape{6, 4}, Shape{3, 4, 5}}) {
    CAPTURE(shape_str(shape));
    Tensor x = leaf(shape, 30, 2.0f, 1.0f).detach(), w = leaf({4}, 31).detach(), b = leaf({4}, 32).detach();
    ChannelStats s = naive_channel_stats(x);
    // Training: batch mean and biased variance.
    Tensor rm = Tensor::zeros({4}), rv = Tensor::ones({4});
    check_close(batch_norm(x, w, b, rm, rv, true).to_vector(), naive_batch_norm(x, s.mean, s.var_biased, w, b, 1e-5),
                1e-4, 1e-5, "train");
    check_close(batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1f, 0.5f).to_vector(),
                naive_batch_norm(x, s.mean, s.var_biased, Tensor(), Tensor(), 0.5), 1e-4, 1e-5, "train, no affine");
    // Eval: the running statistics, which it leaves alone.
    std::vector<double> mean = {0.5, -1, 2, 0}, var = {1, 0.25, 4, 2};
    Tensor em = Tensor::from_vector(to_float(mean), {4}), ev = Tensor::from_vector(to_float(var), {4});
    check_close(batch_norm(x, w, b, em, ev, false).to_vector(), naive_batch_norm(x, mean, var, w, b, 1e-5), 1e-4, 1e-5,
                "eval");
    CHECK(em.to_vector() == to_float(mean));
    CHECK(ev.to_vector() == to_float(var));
    // Eval without running stats: batch statistics (as track_running_stats=False).
    check_close(batch_norm(x, w, b, Tensor(), Tensor(), false).to_vector(),
                naive_batch_norm(x, s.mean, s.var_biased, w, b, 1e-5), 1e-4, 1e-5, "eval, no running stats");
  }
  // Hand-computed: one channel holding {1, 3}: mean 2, biased var 1 -> {-1, 1} (eps 0), then * 2 + 1.
  Tensor y = batch_norm(Tensor::from_vector({1, 3}, {2, 1}), Tensor::full({1}, 2), Tensor::ones({1}), Tensor(),
                        Tensor(), true, 0.1f, 0.0f);
  check_close(y.to_vector(), {-1, 3});
  // Empty batch: empty output.
  CHECK(batch_norm(Tensor::zeros({0, 4}), Tensor(), Tensor(), Tensor(), Tensor(), true).shape() == Shape{0, 4});
}

TEST_CASE("batch_norm: running stats after two training steps follow the momentum formula") {
  for (Shape shape : {Shape{5, 3}, Shape{2, 3, 4}}) {
    CAPTURE(shape_str(shape));
    const double momentum = 0.3;
    Tensor rm = Tensor::from_vector({0.1f, -0.2f, 0.3f}, {3}), rv = Tensor::from_vector({1, 2, 0.5f}, {3});
    std::vector<double> em = {0.1, -0.2, 0.3}, ev = {1, 2, 0.5};
    for (uint64_t step = 0; step < 2; ++step) {
      Tensor x = leaf(shape, 40 + step, 1.5f, float(step));
      batch_norm(x, Tensor(), Tensor(), rm, rv, true, float(momentum));
      ChannelStats s = naive_channel_stats(x);
      for (int c = 0; c < 3; ++c) {
        em[c] = (1 - momentum) * em[c] + momentum * s.mean[c];
        ev[c] = (1 - momentum) * ev[c] + momentum * s.var_unbiased[c];  // unbiased, as PyTorch
      }
    }
    check_close(rm.to_vector(), to_float(em), 1e-5, 1e-6, "running_mean");
    check_close(rv.to_vector(), to_float(ev), 1e-5, 1e-6, "running_var");
    // The in-place update is not part of the graph.
    CHECK(!rm.requires_grad());
    CHECK(!rv.requires_grad());
  }
}

TEST_CASE("batch_norm: gradients in training and eval mode") {
  // Running stats are undefined here: the forward would otherwise move them between finite-difference calls.
  auto train = [](const std::vector<Tensor>& v) { return batch_norm(v[0], v[1], v[2], Tensor(), Tensor(), true); };
  check_gradients(train, {leaf({6, 4}, 50, 1.5f), leaf({4}, 51), leaf({4}, 52)});
  check_gradients(train, {leaf({3, 4, 5}, 53), leaf({4}, 54), leaf({4}, 55)});
  check_gradients(
      [](const std::vector<Tensor>& v) { return batch_norm(v[0], Tensor(), Tensor(), Tensor(), Tensor(), true); },
      {leaf({2, 3, 2}, 56)});
  // Eval reads the running stats without changing them: an affine map of x.
  Tensor rm = Tensor::from_vector({0.5f, -1, 0.2f}, {3}), rv = Tensor::from_vector({1, 0.25f, 3}, {3});
  check_gradients([rm, rv](const std::vector<Tensor>& v) { return batch_norm(v[0], v[1], v[2], rm, rv, false); },
                  {leaf({4, 3, 2}, 57), leaf({3}, 58), leaf({3}, 59)});
  check_gradients([rm, rv](const std::vector<Tensor>& v) { return batch_norm(v[0], v[1], v[2], rm, rv, false); },
                  {leaf({5, 3}, 60), leaf({3}, 61), leaf({3}, 62)});
}

TEST_CASE("batch_norm: errors") {
  check_throws_with(
      [] {
        batch_norm(Tensor::zeros({1, 4}), Tensor(), Tensor(), Tensor::zeros({4}), Tensor::ones({4}), true);
      },
      {"batch_norm: expected more than 1 value per channel when training, got input [1, 4]"});
  check_throws_with([] { batch_norm(Tensor::zeros({1, 4, 1}), Tensor(), Tensor(), Tensor(), Tensor(), true); },
                    {"more than 1 value per channel", "[1, 4, 1]"});
  // One value per channel is fine in eval with running stats.
  CHECK(batch_norm(Tensor::zeros({1, 4}), Tensor(), Tensor(), Tensor::zeros({4}), Tensor::ones({4}), false).numel() ==
        4);
  check_throws_with([] { batch_norm(Tensor::zeros({4}), Tensor(), Tensor(), Tensor(), Tensor(), true); },
                    {"batch_norm", "[N, C]", "[4]"});
  check_throws_with([] { batch_norm(Tensor::zeros({2, 4}), Tensor::ones({3}), Tensor(), Tensor(), Tensor(), true); },
                    {"batch_norm", "weight [3]", "[2, 4]"});
  check_throws_with([] { batch_norm(Tensor::zeros({2, 4}), Tensor(), Tensor(), Tensor::zeros({4}), Tensor(), true); },
                    {"batch_norm", "running_mean and running_var"});
  check_throws_with(
      [] {
        batch_norm(Tensor::zeros({2, 4, 3}), Tensor(), Tensor(), Tensor::zeros({3}), Tensor::ones({3}), false);
      },
      {"batch_norm", "running_mean [3]"});
}
