#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {
struct UnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> op;
  std::function<double(double)> ref;
  float scale, shift;  // input range: randn * scale + shift
};
}  // namespace

TEST_CASE("unary ops: forward against std math, backward against finite differences") {
  const double kPi = 3.14159265358979323846;
  std::vector<UnaryCase> cases = {
      {"neg", [](const Tensor& x) { return neg(x); }, [](double v) { return -v; }, 1, 0},
      {"exp", [](const Tensor& x) { return exp(x); }, [](double v) { return std::exp(v); }, 1, 0},
      {"log", [](const Tensor& x) { return log(x); }, [](double v) { return std::log(v); }, 0.3f, 2},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, [](double v) { return std::sqrt(v); }, 0.3f, 2},
      {"rsqrt", [](const Tensor& x) { return rsqrt(x); }, [](double v) { return 1 / std::sqrt(v); }, 0.3f, 2},
      {"pow", [](const Tensor& x) { return pow(x, 2.5f); }, [](double v) { return std::pow(v, 2.5); }, 0.3f, 2},
      {"abs", [](const Tensor& x) { return abs(x); }, [](double v) { return std::fabs(v); }, 1, 0},
      {"relu", [](const Tensor& x) { return relu(x); }, [](double v) { return v > 0 ? v : 0; }, 1, 0},
      {"gelu", [](const Tensor& x) { return gelu(x); },
       [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }, 1.5f, 0},
      {"tanh", [](const Tensor& x) { return tanh(x); }, [](double v) { return std::tanh(v); }, 1, 0},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, [](double v) { return 1 / (1 + std::exp(-v)); }, 2, 0},
      {"softplus", [](const Tensor& x) { return softplus(x, 2.0f, 5.0f); },
       [](double v) { return 2 * v > 5 ? v : std::log1p(std::exp(2 * v)) / 2; }, 2, 0},
      {"clamp", [](const Tensor& x) { return clamp(x, -0.5f, 0.7f); },
       [](double v) { return std::min(std::max(v, -0.5), 0.7); }, 1, 0},
      {"normal_cdf", [](const Tensor& x) { return normal_cdf(x); },
       [](double v) { return 0.5 * std::erfc(-v / std::sqrt(2.0)); }, 2, 0},
  };
  (void)kPi;
  for (auto& c : cases) {
    CAPTURE(c.name);
    Tensor x = leaf({4, 33}, 5, c.scale, c.shift);
    std::vector<float> xs = x.to_vector(), ys = c.op(x).to_vector(), ref(xs.size());
    for (size_t i = 0; i < xs.size(); ++i) ref[i] = float(c.ref(xs[i]));
    check_close(ys, ref, 1e-5, 1e-6, c.name);
    Tensor small = leaf({3, 5}, 6, c.scale, c.shift);
    check_gradients([&](const std::vector<Tensor>& v) { return c.op(v[0]); }, {small});
  }
}

TEST_CASE("unary ops: NaN propagates as in PyTorch, and the gradient at NaN is PyTorch's") {
  // PyTorch 1.13: every op maps NaN to NaN (pow(NaN, 0) is 1); at NaN, relu passes g, clamp and abs give 0,
  // the others NaN. A relu or clamp that turned NaN into a number would hide a broken input or model.
  struct Case {
    const char* name;
    std::function<Tensor(const Tensor&)> op;
    float grad_at_nan;  // NaN: NaN
  };
  const std::vector<Case> cases = {
      {"neg", [](const Tensor& x) { return neg(x); }, -1.0f},
      {"exp", [](const Tensor& x) { return exp(x); }, NAN},
      {"log", [](const Tensor& x) { return log(x); }, NAN},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, NAN},
      {"rsqrt", [](const Tensor& x) { return rsqrt(x); }, NAN},
      {"pow", [](const Tensor& x) { return pow(x, 2.5f); }, NAN},
      {"abs", [](const Tensor& x) { return abs(x); }, 0.0f},
      {"relu", [](const Tensor& x) { return relu(x); }, 1.0f},
      {"gelu", [](const Tensor& x) { return gelu(x); }, NAN},
      {"tanh", [](const Tensor& x) { return tanh(x); }, NAN},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, NAN},
      {"softplus", [](const Tensor& x) { return softplus(x, 2.0f, 5.0f); }, NAN},
      {"clamp", [](const Tensor& x) { return clamp(x, -0.5f, 0.7f); }, 0.0f},
      {"normal_cdf", [](const Tensor& x) { return normal_cdf(x); }, NAN},
  };
  for (const Case& c : cases) {
    const std::string name = c.name;
    CAPTURE(name);
    // 37 values, NaN at 0, 9 and 36: in a vector body and in the scalar tail of the vectorised kernels.
    std::vector<float> v(37, 1.25f);
    v[0] = v[9] = v[36] = NAN;
    Tensor x = Tensor::from_vector(v, {37});
    x.set_requires_grad();
    Tensor y = c.op(x);
    sum(y).backward();
    const std::vector<float> ys = y.to_vector(), gs = x.grad().to_vector();
    for (size_t i : {0, 9, 36}) {
      CHECK(std::isnan(ys[i]));
      if (std::isnan(c.grad_at_nan)) CHECK(std::isnan(gs[i]));
      else CHECK(gs[i] == c.grad_at_nan);
    }
    CHECK(std::isfinite(ys[1]));  // the other values stay numbers
    CHECK(std::isfinite(gs[1]));
  }
}

TEST_CASE("unary edge cases: empty, large inputs, errors") {
  CHECK(exp(Tensor::zeros({0})).numel() == 0);
  // softplus is linear above its threshold: no overflow to inf.
  CHECK(softplus(Tensor::full({1}, 100.0f)).item() == 100.0f);
  CHECK(sigmoid(Tensor::full({1}, -100.0f)).item() == doctest::Approx(0.0));
  check_throws_with([] { clamp(Tensor::zeros({1}), 1, 0); }, {"clamp"});
  check_throws_with([] { softplus(Tensor::zeros({1}), 0); }, {"softplus", "beta"});
}
