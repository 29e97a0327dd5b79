#include <cmath>

#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

// Double-precision reference over the last dim of R rows of C values.
std::vector<float> naive_softmax(const std::vector<float>& x, int64_t C, bool log) {
  std::vector<float> y(x.size());
  for (size_t r = 0; r * C < x.size(); ++r) {
    double m = -INFINITY, s = 0;
    for (int64_t c = 0; c < C; ++c) m = std::max(m, double(x[r * C + c]));
    for (int64_t c = 0; c < C; ++c) s += std::exp(double(x[r * C + c]) - m);
    for (int64_t c = 0; c < C; ++c) {
      double v = double(x[r * C + c]) - m;
      y[r * C + c] = float(log ? v - std::log(s) : std::exp(v) / s);
    }
  }
  return y;
}

}  // namespace

TEST_CASE("softmax and log_softmax: against a double-precision reference, rows sum to 1") {
  for (Shape shape : {Shape{5, 37}, Shape{2, 3, 129}, Shape{1}, Shape{4, 1}, Shape{64, 1000}}) {
    CAPTURE(shape_str(shape));
    Tensor x = leaf(shape, 40, 3);
    const int64_t C = shape.back();
    std::vector<float> y = softmax(x).to_vector(), ly = log_softmax(x).to_vector();
    check_close(y, naive_softmax(x.to_vector(), C, false), 1e-5, 1e-7, "softmax");
    check_close(ly, naive_softmax(x.to_vector(), C, true), 1e-5, 1e-5, "log_softmax");
    for (size_t r = 0; r * C < y.size(); ++r) {
      double s = 0;
      for (int64_t c = 0; c < C; ++c) s += y[r * C + c];
      CHECK(s == doctest::Approx(1.0).epsilon(1e-5));
    }
  }
}

TEST_CASE("softmax: large inputs stay finite (the row max is subtracted)") {
  Tensor x = Tensor::from_vector({1000, 999, 998, -1000, 0, 1000}, {2, 3});
  std::vector<float> y = softmax(x).to_vector(), ly = log_softmax(x).to_vector();
  for (float v : y) CHECK(std::isfinite(v));
  for (float v : ly) CHECK(std::isfinite(v));
  check_close(y, naive_softmax(x.to_vector(), 3, false), 1e-5, 1e-7);
  check_close(ly, naive_softmax(x.to_vector(), 3, true), 1e-5, 1e-5);
  CHECK(y[3] == 0.0f);           // exp(-2000) underflows to exactly 0
  CHECK(y[5] == doctest::Approx(1.0));
}

TEST_CASE("softmax: -inf entries (masked attention) give 0; an all -inf row gives NaN as PyTorch") {
  const float inf = INFINITY;
  Tensor x = Tensor::from_vector({0, -inf, 1, -inf, -inf, -inf}, {2, 3});
  x.set_requires_grad(true);
  Tensor y = softmax(x);
  std::vector<float> v = y.to_vector();
  const double e = std::exp(1.0);
  CHECK(v[0] == doctest::Approx(1 / (1 + e)));
  CHECK(v[1] == 0.0f);
  CHECK(v[2] == doctest::Approx(e / (1 + e)));
  for (int i = 3; i < 6; ++i) CHECK(std::isnan(v[i]));
  std::vector<float> lv = log_softmax(x).to_vector();
  CHECK(lv[0] == doctest::Approx(-std::log(1 + e)));
  CHECK(lv[1] == -inf);
  for (int i = 3; i < 6; ++i) CHECK(std::isnan(lv[i]));

  // Backward through the partly masked row alone: finite, 0 at the masked entry, matches y * (g - sum(g y)).
  Tensor row = Tensor::from_vector({0, -inf, 1}, {3});
  row.set_requires_grad(true);
  Tensor yr = softmax(row);
  yr.backward(Tensor::from_vector({1, 2, 3}, {3}));
  std::vector<float> g = row.grad().to_vector(), yv = yr.to_vector();
  const double dot = 1 * yv[0] + 3 * yv[2];
  CHECK(g[0] == doctest::Approx(yv[0] * (1 - dot)));
  CHECK(g[1] == 0.0f);
  CHECK(g[2] == doctest::Approx(yv[2] * (3 - dot)));
  // log_softmax: gx = g - exp(y) sum(g); the masked entry has exp(y) = 0 and keeps its g.
  Tensor row2 = Tensor::from_vector({0, -inf, 1}, {3});
  row2.set_requires_grad(true);
  log_softmax(row2).backward(Tensor::from_vector({1, 2, 3}, {3}));
  std::vector<float> g2 = row2.grad().to_vector();
  CHECK(g2[0] == doctest::Approx(1 - 6 / (1 + e)));
  CHECK(g2[1] == 2.0f);
  CHECK(g2[2] == doctest::Approx(3 - 6 * e / (1 + e)));
}

TEST_CASE("softmax and log_softmax: gradients against finite differences") {
  check_gradients([](const std::vector<Tensor>& v) { return softmax(v[0]); }, {leaf({3, 7}, 41)});
  check_gradients([](const std::vector<Tensor>& v) { return log_softmax(v[0]); }, {leaf({3, 7}, 42)});
  check_gradients([](const std::vector<Tensor>& v) { return softmax(v[0]); }, {leaf({2, 2, 5}, 43, 2)});
  check_gradients([](const std::vector<Tensor>& v) { return log_softmax(v[0]); }, {leaf({4, 1}, 44)});
}

TEST_CASE("softmax: size-1, rank-0 and empty inputs") {
  CHECK(softmax(Tensor::scalar(3)).item() == 1.0f);
  CHECK(log_softmax(Tensor::scalar(3)).item() == 0.0f);
  check_close(softmax(Tensor::from_vector({5, -7}, {2, 1})), Tensor::ones({2, 1}));
  CHECK(softmax(Tensor::zeros({0, 5})).shape() == Shape{0, 5});
  CHECK(log_softmax(Tensor::zeros({3, 0})).shape() == Shape{3, 0});
  check_throws_with([] { softmax(Tensor()); }, {"softmax", "undefined"});
}
