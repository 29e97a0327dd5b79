// Vectorised exact GELU, gelu(x) = x * Phi(x) with Phi(x) = erfc(-x / sqrt 2) / 2, and its derivative
// Phi(x) + x * phi(x), written once for any vector width (see vec_impl.h; instantiated in fast_math.cpp and
// fast_math_avx2.cpp). Method: with z = |x| / sqrt 2 and t = 1 / (1 + z / 2),
//   erfc(z) = t * exp(-z^2) * Q(t),
// Q a degree-8 polynomial fitted to erfc(z) exp(z^2) / t for z in [0, 10] (t in [1/6, 1]) by reweighted least
// squares towards the minimax relative error (4e-8 in exact arithmetic, 2.2e-7 evaluated in float). exp(-z^2)
// is also phi's exponential, so the derivative costs no second exp. Phi(x) is erfc / 2 for x < 0 and
// 1 - erfc / 2 for x >= 0, so the left tail keeps its relative accuracy: about 1e-6, plus z^2 * 2^-24 from
// rounding z^2 = x^2 / 2 before the exp (4e-6 at x = -13). |x| is clamped at 13.2 (kGeluMaxAbs), so below
// -13.2 the result is about -1e-38 instead of a denormal or 0; a NaN input gives NaN.
#pragma once
#include <cstdint>
#include <cstring>

#include "ops/cpu/fast_exp_impl.h"
#include "ops/cpu/vec_impl.h"

namespace msmix::cpu {

// |x| is clamped here: z = 9.33, e^-z^2 = 1.2e-38 is the smallest normal float; gelu(-13.2) = -1e-38.
constexpr float kGeluMaxAbs = 13.2f;

// Phi(x) (cdf) and exp(-x^2 / 2) (e) for one vector.
template <class V, class IV>
static inline void gelu_parts(V x, V& cdf, V& e) {
  V ax;
  {
    IV bits;
    std::memcpy(&bits, &x, sizeof bits);
    bits &= 0x7fffffff;  // |x|
    std::memcpy(&ax, &bits, sizeof ax);
  }
  ax = min_keep_nan(V{} + kGeluMaxAbs, ax);
  V t = reciprocal(ax * 0.35355339059327377f + 1.0f);  // 1 / (1 + z / 2), z = |x| / sqrt 2
  // Q / 2, so that q = erfc(z) / 2 / (t exp(-z^2)).
  V q = V{} - 0.029534608125686646f;
  q = q * t + 0.14228808879852295f;
  q = q * t - 0.24360114336013794f;
  q = q * t + 0.13903489708900452f;
  q = q * t - 0.013313692063093185f;
  q = q * t + 0.10134378075599670f;
  q = q * t + 0.12155180424451828f;
  q = q * t + 0.14118766784667969f;
  q = q * t + 0.14104320108890533f;
  // -z^2 = x * x * -1/2: one rounding (squaring a rounded z would make three). In [-87.1, 0].
  e = fast_exp_normal_vec<V, IV>(ax * ax * -0.5f);
  V half_erfc = t * e * q;
  cdf = x < 0.0f ? half_erfc : 1.0f - half_erfc;
}

// Runs f(x vector) -> result vector over n elements: full vectors, then the tail through a padded vector.
template <class V, class F>
static inline void map_vec(const float* x, float* y, int64_t n, F f) {
  constexpr int64_t W = lanes<V>();
  int64_t i = 0;
  for (; i + W <= n; i += W) store(y + i, f(load<V>(x + i), i));
  if (i < n) {
    float in[W] = {}, out[W];
    std::memcpy(in, x + i, size_t(n - i) * sizeof(float));
    store(out, f(load<V>(in), i));
    std::memcpy(y + i, out, size_t(n - i) * sizeof(float));
  }
}

// y = gelu(x)
template <class V, class IV>
static inline void gelu_vec(const float* x, float* y, int64_t n) {
  map_vec<V>(x, y, n, [](V v, int64_t) {
    V cdf, e;
    gelu_parts<V, IV>(v, cdf, e);
    return v * cdf;
  });
}

// gx = g * (Phi(x) + x * phi(x)), phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
template <class V, class IV>
static inline void gelu_backward_vec(const float* x, const float* g, float* gx, int64_t n) {
  constexpr int64_t W = lanes<V>();
  const float kInvSqrt2Pi = 0.39894228040143268f;
  map_vec<V>(x, gx, n, [=](V v, int64_t i) {
    V cdf, e, gv;
    gelu_parts<V, IV>(v, cdf, e);
    if (i + W <= n) {
      gv = load<V>(g + i);
    } else {
      float pad[W] = {};
      std::memcpy(pad, g + i, size_t(n - i) * sizeof(float));
      gv = load<V>(pad);
    }
    return gv * (cdf + v * (e * kInvSqrt2Pi));
  });
}

}  // namespace msmix::cpu
