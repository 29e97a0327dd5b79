// Vectorised exact GELU, gelu(x) = x * Phi(x) with Phi(x) = erfc(-x / sqrt 2) / 2, and its derivative
// Phi(x) + x * phi(x), written once for any vector width (see vec_impl.h; instantiated in fast_math.cpp and
// fast_math_avx2.cpp). Method: with a = |x|,
//   Phi(-a) = exp(-a^2 / 2) * P(a) / R(a),
// P (degree 3) / R (degree 4) a rational fit, in a itself, to Phi(-a) exp(a^2 / 2) for a in [0, 13.2] by
// reweighted linearised least squares towards the minimax relative error (3.5e-7 in exact arithmetic, 3.6e-7
// with the coefficients rounded to float; degrees 4 / 5 reach 4e-8 but cost two more FMAs per vector, and the
// float evaluation's own rounding, about 3e-7, would hide most of it). All coefficients are positive, so
// Horner's rule adds no cancellation.
// exp(-a^2 / 2) is also phi's exponential, so the derivative costs no second exp (exp_neg_half_square: with
// AVX2 a table of 2^(j / 8) and a degree-3 polynomial, in SSE2 a degree-5 one; see there). Phi(x) is Phi(-a)
// for x < 0 and 1 - Phi(-a) for x >= 0, and gelu(x) = max(x, 0) - a * Phi(-a) covers both signs in one
// subtraction, so the left tail keeps its relative accuracy: at most 7.3e-7 over every 13th float in
// [-11.7, 14] with FMA (the AVX2 build, where a^2 enters the exp's reduction unrounded); the SSE2 build reaches
// 1.04e-6 there and adds a^2 / 2 * 2^-24 from rounding a^2 (4.4e-6 near x = -11.6). a is clamped at 13.2
// (kGeluMaxAbs), so below -13.2 (and at -inf) the result is about -6e-39, a denormal (0 when denormals are
// flushed); a NaN input gives NaN.
#pragma once
#include <cstdint>
#include <cstring>

#include "ops/cpu/vec_impl.h"

namespace msmix::cpu {

// a is clamped here: exp(-13.2^2 / 2) = 1.5e-38 is just above the smallest normal float (2^-126 = n's floor).
constexpr float kGeluMaxAbs = 13.2f;

// exp(-a^2 / 2) for a in [0, 13.2] (or NaN), to about 1e-7 relative; with FMA, a^2 enters unrounded.
template <class V, class IV>
static inline V exp_neg_half_square(V a) {
  V a2 = a * a;
  if constexpr (sizeof(V) == 32) {
    // AVX2: exp(-a^2 / 2) = 2^(m / 8) e^(-s / 2), m = round(-a^2 / 2 * 8 / ln 2) in [-1006, 0],
    // s = a^2 + m ln 2 / 4 in [-ln 2 / 8, ln 2 / 8], where a degree-3 polynomial is enough (3e-8): two FMAs
    // fewer than the plain reduction, paid for by a table lookup and integer ops that run beside the FMAs.
    // m sits in t's low mantissa bits: its low 3 bits index the table of 2^(j / 8) (vpermps reads only those),
    // and t's bits shifted left by 20 and masked to the exponent field are floor(m / 8) << 23, which added to
    // the table entry's bits (in [1, 2)) scales it by 2^floor(m / 8): exponent >= 127 - 126.
    const float kRound = 12582912.0f;                             // 1.5 * 2^23
    const float kHi = 0.1732940673828125f, kLo = -7.27224278e-06f;  // ln 2 / 4, 14 bits exact in m * hi
    V t = a2 * -5.7707801635558535f + kRound;                     // -a^2 / 2 * 8 / ln 2
    V m = t - kRound;
    V s = V(_mm256_fmadd_ps(__m256(a), __m256(a), __m256(m * kHi)));
    s = m * kLo + s;
    V q = V{} - 0.0208335798f;
    q = q * s + 0.125016183f;
    q = q * s - 0.5f;
    q = q * s + 1.0f;
    const __m256 kTable = _mm256_setr_ps(1.0f, 1.09050775f, 1.18920708f, 1.29683959f, 1.41421354f, 1.54221082f,
                                         1.68179286f, 1.8340081f);  // 2^(j / 8)
    IV ti, bits;
    std::memcpy(&ti, &t, sizeof ti);
    V entry = V(_mm256_permutevar8x32_ps(kTable, __m256i(ti)));
    std::memcpy(&bits, &entry, sizeof bits);
    bits += (ti << 20) & ~0x7fffff;
    V scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return q * scale;
  } else {
    // SSE2 has no lane permute (nor FMA, so a^2 is rounded): exp(-a^2 / 2) = 2^n e^(-s / 2) with
    // n = round(-a^2 / 2 / ln 2) in [-126, 0], s = a^2 + 2 n ln 2 in [-ln 2, ln 2] and a degree-5 polynomial
    // (9e-8). Adding kRound puts 127 + n in t's low mantissa bits, and those bits shifted left by 23 are 2^n.
    const float kRound = 12582912.0f + 127.0f;  // 1.5 * 2^23 + the exponent bias
    const float k2Ln2Hi = 1.38671875f, k2Ln2Lo = -4.24388880e-4f;  // 2 ln 2, its first 9 bits exact in n * hi
    V t = a2 * -0.72134752044448170f + kRound;  // -a^2 / 2 * log2(e)
    V nf = t - kRound;
    V s = a2 + nf * k2Ln2Hi;  // exact product, one rounding of a small sum
    s = nf * k2Ln2Lo + s;
    V q = V{} - 0.000259044697f;
    q = q * s + 0.00261865836f;
    q = q * s - 0.0208345652f;
    q = q * s + 0.124997862f;
    q = q * s - 0.499999851f;
    q = q * s + 1.0f;
    IV n;
    std::memcpy(&n, &t, sizeof n);
    n <<= 23;
    V scale;
    std::memcpy(&scale, &n, sizeof scale);
    return q * scale;
  }
}

// For a = min(|x|, 13.2): e = exp(-a^2 / 2) and Phi(-a) = e * p / r. The caller multiplies its factors into
// the numerator before the one division.
template <class V, class IV>
static inline void gelu_parts(V x, V& a, V& e, V& p, V& r) {
  {
    IV bits;
    std::memcpy(&bits, &x, sizeof bits);
    bits &= 0x7fffffff;  // |x|
    std::memcpy(&a, &bits, sizeof a);
  }
  a = min_keep_nan(V{} + kGeluMaxAbs, a);
  p = V{} + 0.0168364923f;
  p = p * a + 0.118638784f;
  p = p * a + 0.360413551f;
  p = p * a + 0.499999821f;
  r = V{} + 0.04220834f;
  r = r * a + 0.297166586f;
  r = r * a + 0.949159205f;
  r = r * a + 1.51869428f;
  r = r * a + 1.0f;
  e = exp_neg_half_square<V, IV>(a);
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

// y = gelu(x) = max(x, 0) - a Phi(-a): x Phi(x) for x < 0, x - x (1 - Phi(x)) for x >= 0. Software prefetch
// 2 KiB ahead: with about 13 cycles of arithmetic per 8 floats the hardware prefetcher alone left 4M floats
// 6% slower per element than L2-resident ones (median of 5 runs 0.659 -> 0.617 ns).
template <class V, class IV>
static inline void gelu_vec(const float* x, float* y, int64_t n) {
  map_vec<V>(x, y, n, [=](V v, int64_t i) {
    if (i % 16 == 0) {  // each 64-byte line of x and y 2 KiB ahead; past the end is harmless
      __builtin_prefetch(x + i + 512);
      __builtin_prefetch(y + i + 512, 1);
    }
    V a, e, p, r;
    gelu_parts<V, IV>(v, a, e, p, r);
    return max_keep_nan(V{}, v) - a * p * e / r;
  });
}

// gx = g * (Phi(x) + x * phi(x)), phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
template <class V, class IV>
static inline void gelu_backward_vec(const float* x, const float* g, float* gx, int64_t n) {
  constexpr int64_t W = lanes<V>();
  const float kInvSqrt2Pi = 0.39894228040143268f;
  map_vec<V>(x, gx, n, [=](V v, int64_t i) {
    V a, e, p, r, gv;
    gelu_parts<V, IV>(v, a, e, p, r);
    V tail = e * p / r;  // Phi(-a)
    V cdf = v < 0.0f ? tail : 1.0f - tail;
    V xc;  // x clamped like a (a with x's sign), so that x phi(x) is 0 at +-inf rather than inf * 0
    {
      IV vb, ab;
      std::memcpy(&vb, &v, sizeof vb);
      std::memcpy(&ab, &a, sizeof ab);
      ab |= vb & ~0x7fffffff;
      std::memcpy(&xc, &ab, sizeof xc);
    }
    if (i + W <= n) {
      gv = load<V>(g + i);
    } else {
      float pad[W] = {};
      std::memcpy(pad, g + i, size_t(n - i) * sizeof(float));
      gv = load<V>(pad);
    }
    return gv * (cdf + xc * (e * kInvSqrt2Pi));
  });
}

}  // namespace msmix::cpu
