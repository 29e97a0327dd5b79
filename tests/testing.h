// Shared test helpers: closeness checks, random inputs, and the finite-difference gradient check.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "engine/error.h"
#include "models/module.h"
#include "ops/ops.h"

namespace msmix::testing {

// Every element satisfies |a - b| <= atol + rtol * |b|; on failure reports the worst element.
inline void check_close(const std::vector<float>& a, const std::vector<float>& b, double rtol = 1e-5,
                        double atol = 1e-6, const std::string& what = "") {
  REQUIRE_MESSAGE(a.size() == b.size(), what << ": sizes differ " << a.size() << " vs " << b.size());
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double excess = std::fabs(double(a[i]) - b[i]) - (atol + rtol * std::fabs(double(b[i])));
    if (std::isnan(a[i]) != std::isnan(b[i])) excess = 1e30;
    if (excess > worst) worst = excess, at = i;
  }
  CHECK_MESSAGE(worst <= 0, what << ": element " << at << " is " << a[at] << ", expected " << b[at]);
}

inline void check_close(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-6,
                        const std::string& what = "") {
  REQUIRE_MESSAGE(a.shape() == b.shape(), what << ": shapes differ " << shape_str(a.shape()) << " vs "
                                               << shape_str(b.shape()));
  check_close(a.to_vector(), b.to_vector(), rtol, atol, what);
}

// Standard normal values from a generator seeded with `seed` (no grad).
inline Tensor randn_tensor(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return Tensor::randn(shape, gen);
}

// A fresh leaf with values from randn(seed), requiring grad.
inline Tensor leaf(const Shape& shape, uint64_t seed, float scale = 1, float shift = 0) {
  Generator gen(seed);
  Tensor t = add(mul(Tensor::randn(shape, gen), scale), shift).detach();
  t.set_requires_grad(true);
  return t;
}

// Checks d/d(input) of L = sum(f(inputs) * W), W fixed random weights, for every input that requires grad,
// against central differences in float64 accumulation. eps and tolerances suit float32 ops of O(1) values:
// a dropped term or a flipped sign fails.
inline void check_gradients(const std::function<Tensor(const std::vector<Tensor>&)>& f, std::vector<Tensor> inputs,
                            double eps = 1e-3, double rtol = 1e-2, double atol = 2e-3) {
  Tensor out = f(inputs);
  Generator gen(12345);
  Tensor weights = Tensor::randn(out.shape(), gen);
  for (Tensor& x : inputs) x.zero_grad();
  out.backward(weights);
  std::vector<float> w = weights.to_vector();
  auto loss = [&]() {
    NoGradGuard no_grad;
    std::vector<float> o = f(inputs).to_vector();
    double s = 0;
    for (size_t i = 0; i < o.size(); ++i) s += double(o[i]) * w[i];
    return s;
  };
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor& x = inputs[k];
    if (!x.requires_grad()) continue;
    REQUIRE_MESSAGE(x.grad().defined(), "input " << k << " got no grad");
    std::vector<float> analytic = x.grad().to_vector(), numeric(analytic.size());
    float* p = x.data();  // CPU tensors: perturb in place
    for (size_t i = 0; i < numeric.size(); ++i) {
      float saved = p[i];
      p[i] = float(saved + eps);
      double up = loss();
      p[i] = float(saved - eps);
      double down = loss();
      p[i] = saved;
      numeric[i] = float((up - down) / (2 * eps));
    }
    check_close(analytic, numeric, rtol, atol, "grad of input " + std::to_string(k));
  }
}

// The names of a module's parameters or buffers, in order.
inline std::vector<std::string> names(const NamedTensors& list) {
  std::vector<std::string> out;
  for (const auto& [name, t] : list) out.push_back(name);
  return out;
}

// Runs `fn`, requires that it throws msmix::Error, and that the message contains each of `parts`.
inline void check_throws_with(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  std::string message;
  try {
    fn();
  } catch (const Error& e) {
    message = e.what();
  }
  REQUIRE_MESSAGE(!message.empty(), "expected an msmix::Error");
  for (const auto& part : parts)
    CHECK_MESSAGE(message.find(part) != std::string::npos, "'" << message << "' lacks '" << part << "'");
}

// Symmetric [B, B] matrix from its strict upper triangle values (row-major), zero diagonal: hand-made
// similarity matrices for the sample-selection tests.
inline Tensor symmetric(int64_t B, const std::vector<float>& upper) {
  std::vector<float> s(size_t(B * B), 0.0f);
  size_t k = 0;
  for (int64_t i = 0; i < B; ++i)
    for (int64_t j = i + 1; j < B; ++j) s[size_t(i * B + j)] = s[size_t(j * B + i)] = upper.at(k++);
  return Tensor::from_vector(s, {B, B});
}

}  // namespace msmix::testing
