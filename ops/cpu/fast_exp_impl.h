// The vectorised expf kernel, written once for any GCC vector width. Functions here are `static` on purpose:
// ops/cpu/fast_math_avx2.cpp instantiates them with AVX2 code, and internal linkage keeps the linker from
// merging that code into callers compiled for baseline x86-64.
// Method: e^x = 2^n * e^r with n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2] (ln 2 split in a high
// and a low part so r is exact), e^r by its degree-6 Taylor polynomial (truncation < 1.2e-7 relative), and 2^n
// built in the exponent bits as two halves so that overflow (inf) and underflow (denormals, then 0) happen in
// the final products. Max error about 4 ulp; NaN stays NaN; -inf gives exactly 0 (masked softmax entries).
#pragma once
#include <cstdint>
#include <cstring>

#include "ops/cpu/vec_impl.h"

namespace msmix::cpu {

// e^x = 2^n * p: returns p = e^r and sets n (as integers), for x already in [-104, 89] (or NaN).
template <class V, class IV>
static inline V exp_reduced(V x, IV& n) {
  const float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  const float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits
  V t = x * kLog2e + kRound;
  V nf = t - kRound;
  V r = (x - nf * kLn2Hi) - nf * kLn2Lo;
  V p = V{} + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  IV ti, round_bits;
  std::memcpy(&ti, &t, sizeof ti);
  V round_vec = V{} + kRound;
  std::memcpy(&round_bits, &round_vec, sizeof round_bits);
  n = ti - round_bits;
  return p;
}

template <class V, class IV>
static inline V fast_exp_vec(V x) {
  // Clamp (beyond it the result is inf / 0 anyway); a NaN lane passes through.
  V xc = min_keep_nan(V{} + 89.0f, max_keep_nan(V{} - 104.0f, x));
  IV n;
  V p = exp_reduced<V, IV>(xc, n);
  IV half = n >> 1;
  IV e1 = (half + 127) << 23, e2 = (n - half + 127) << 23;
  V s1, s2;
  std::memcpy(&s1, &e1, sizeof s1);
  std::memcpy(&s2, &e2, sizeof s2);
  return p * s1 * s2;
}

// e^x for callers that know x is in [-87.3, 88.7]: no clamp, and 2^n in one factor (results stay normal
// floats). Outside that range the result is wrong; NaN stays NaN.
template <class V, class IV>
static inline V fast_exp_normal_vec(V x) {
  IV n;
  V p = exp_reduced<V, IV>(x, n);
  IV e = (n + 127) << 23;
  V s;
  std::memcpy(&s, &e, sizeof s);
  return p * s;
}

// y[i] = exp(x[i] + shift), returns the sum; full vectors, then the tail through a zero-padded vector. The
// lanes add at most 64 terms each in float before their sum moves to double (the blocked sum of vec_impl.h),
// so the sum's error stays below about 66 * 2^-24 relative (the terms are positive) for any n.
template <class V, class IV>
static inline double exp_shift_sum_vec(const float* x, float* y, int64_t n, float shift) {
  constexpr int64_t W = sizeof(V) / sizeof(float), kBlock = 64 * W;
  double total = 0;
  int64_t i = 0;
  while (i + W <= n) {
    V acc{};
    const int64_t end = n - i < kBlock ? n : i + kBlock;
    for (; i + W <= end; i += W) {
      V v;
      std::memcpy(&v, x + i, sizeof v);
      V e = fast_exp_vec<V, IV>(v + shift);
      std::memcpy(y + i, &e, sizeof e);
      acc += e;
    }
    for (int k = 0; k < W; ++k) total += acc[k];
  }
  if (i < n) {
    float in[W] = {}, out[W];
    std::memcpy(in, x + i, size_t(n - i) * sizeof(float));
    V v;
    std::memcpy(&v, in, sizeof v);
    V e = fast_exp_vec<V, IV>(v + shift);
    std::memcpy(out, &e, sizeof e);
    for (int64_t k = 0; k < n - i; ++k) total += (y[i + k] = out[k]);
  }
  return total;
}

}  // namespace msmix::cpu
