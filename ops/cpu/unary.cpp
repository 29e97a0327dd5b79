#include "ops/cpu/unary.h"

#include <algorithm>
#include <cmath>

#include "ops/cpu/fast_math.h"

namespace msmix::cpu {
namespace {

constexpr int64_t kParallelMin = 1 << 14;

// One loop per op (the switch stays outside), so each loop body is simple enough to vectorise.
// f is firstprivate: each thread's copy keeps the captured pointers in registers. Shared, the loop reloaded
// them through the closure every element and GCC left the loop scalar.
template <class F>
void map(int64_t n, F f) {
#pragma omp parallel for simd firstprivate(f) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) f(i);
}

// For kernels that work on runs: f(start, length) over chunks of 4096 elements, chunks in parallel.
template <class F>
void map_rows(int64_t n, F f) {
  const int64_t chunk = 4096, chunks = (n + chunk - 1) / chunk;
#pragma omp parallel for if (n > kParallelMin)
  for (int64_t c = 0; c < chunks; ++c) f(c * chunk, std::min(chunk, n - c * chunk));
}

}  // namespace

void unary_forward(UnaryOp op, UnaryParams p, const float* x, float* y, int64_t n) {
  const VecKernels& k = vec_kernels();
  switch (op) {
    case UnaryOp::Neg: return map(n, [=](int64_t i) { y[i] = -x[i]; });
    case UnaryOp::Exp: return map_rows(n, [=](int64_t i, int64_t len) { exp_array(x + i, y + i, len); });
    case UnaryOp::Log: return map(n, [=](int64_t i) { y[i] = std::log(x[i]); });
    case UnaryOp::Sqrt: return map(n, [=](int64_t i) { y[i] = std::sqrt(x[i]); });
    case UnaryOp::Rsqrt: return map(n, [=](int64_t i) { y[i] = 1.0f / std::sqrt(x[i]); });
    case UnaryOp::Pow: return map(n, [=](int64_t i) { y[i] = std::pow(x[i], p.p0); });
    case UnaryOp::Abs: return map(n, [=](int64_t i) { y[i] = std::fabs(x[i]); });
    case UnaryOp::Relu: return map(n, [=](int64_t i) { y[i] = x[i] <= 0 ? 0.0f : x[i]; });  // NaN stays NaN
    case UnaryOp::Gelu:
      return map_rows(n, [=, &k](int64_t i, int64_t len) { k.gelu(x + i, y + i, len); });
    case UnaryOp::Tanh: return map(n, [=](int64_t i) { y[i] = std::tanh(x[i]); });
    case UnaryOp::Sigmoid:  // 1 / (1 + e^-x), with the exponential vectorised
      return map_rows(n, [=](int64_t i, int64_t len) {
        for (int64_t k = i; k < i + len; ++k) y[k] = -x[k];
        exp_array(y + i, y + i, len);
        for (int64_t k = i; k < i + len; ++k) y[k] = 1.0f / (1.0f + y[k]);
      });
    case UnaryOp::Softplus:  // linear above the threshold, as PyTorch (avoids exp overflow)
      return map(n, [=](int64_t i) {
        float bx = p.p0 * x[i];
        y[i] = bx > p.p1 ? x[i] : std::log1p(std::exp(bx)) / p.p0;
      });
    case UnaryOp::Clamp:  // fmin / fmax alone would turn NaN into a bound
      return map(n, [=](int64_t i) { y[i] = std::isnan(x[i]) ? x[i] : std::fmin(std::fmax(x[i], p.p0), p.p1); });
    case UnaryOp::NormalCdf:  // Phi(x) = erfc(-x / sqrt 2) / 2: accurate in the lower tail, where 1 + erf is not
      return map(n, [=](int64_t i) { y[i] = 0.5f * std::erfc(-x[i] * 0.70710678118654752f); });
  }
}

void unary_backward(UnaryOp op, UnaryParams p, const float* x, const float* y, const float* g, float* gx, int64_t n) {
  const VecKernels& k = vec_kernels();
  switch (op) {
    case UnaryOp::Neg: return map(n, [=](int64_t i) { gx[i] = -g[i]; });
    case UnaryOp::Exp: return map_rows(n, [=, &k](int64_t i, int64_t len) { k.mul(g + i, y + i, gx + i, len); });
    case UnaryOp::Log: return map(n, [=](int64_t i) { gx[i] = g[i] / x[i]; });
    case UnaryOp::Sqrt: return map(n, [=](int64_t i) { gx[i] = g[i] * 0.5f / y[i]; });
    case UnaryOp::Rsqrt: return map(n, [=](int64_t i) { gx[i] = g[i] * -0.5f * y[i] * y[i] * y[i]; });
    case UnaryOp::Pow:
      return map(n, [=](int64_t i) { gx[i] = p.p0 == 0 ? 0.0f : g[i] * p.p0 * std::pow(x[i], p.p0 - 1); });
    case UnaryOp::Abs: return map(n, [=](int64_t i) { gx[i] = x[i] > 0 ? g[i] : (x[i] < 0 ? -g[i] : 0.0f); });
    case UnaryOp::Relu: return map(n, [=](int64_t i) { gx[i] = x[i] <= 0 ? 0.0f : g[i]; });  // PyTorch: g at NaN
    case UnaryOp::Gelu:  // Phi(x) + x * phi(x)
      return map_rows(n, [=, &k](int64_t i, int64_t len) { k.gelu_backward(x + i, g + i, gx + i, len); });
    case UnaryOp::Tanh: return map(n, [=](int64_t i) { gx[i] = g[i] * (1.0f - y[i] * y[i]); });
    case UnaryOp::Sigmoid: return map(n, [=](int64_t i) { gx[i] = g[i] * y[i] * (1.0f - y[i]); });
    case UnaryOp::Softplus:
      return map(n, [=](int64_t i) {
        float bx = p.p0 * x[i];
        gx[i] = bx > p.p1 ? g[i] : g[i] / (1.0f + std::exp(-bx));
      });
    case UnaryOp::Clamp: return map(n, [=](int64_t i) { gx[i] = (x[i] >= p.p0 && x[i] <= p.p1) ? g[i] : 0.0f; });
    case UnaryOp::NormalCdf:  // phi(x) = e^(-x^2 / 2) / sqrt(2 pi)
      return map(n, [=](int64_t i) { gx[i] = g[i] * 0.39894228040143268f * std::exp(-0.5f * x[i] * x[i]); });
  }
}

}  // namespace msmix::cpu
