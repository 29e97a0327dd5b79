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

namespace msmix::cpu {

template <class V, class IV>
static inline V fast_exp_vec(V x) {
  const float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  const float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits
  // Clamp (beyond it the result is inf / 0 anyway); a NaN lane fails both compares and passes through.
  V xc = x < -104.0f ? V{} - 104.0f : x;
  xc = xc > 89.0f ? V{} + 89.0f : xc;
  V t = xc * kLog2e + kRound;
  V n = t - kRound;
  V r = (xc - n * kLn2Hi) - n * kLn2Lo;
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
  IV ni = ti - round_bits;
  IV half = ni >> 1;
  IV e1 = (half + 127) << 23, e2 = (ni - half + 127) << 23;
  V s1, s2;
  std::memcpy(&s1, &e1, sizeof s1);
  std::memcpy(&s2, &e2, sizeof s2);
  return p * s1 * s2;
}

// y[i] = exp(x[i] + shift), returns the sum; full vectors, then the tail through a zero-padded vector.
template <class V, class IV>
static inline double exp_shift_sum_vec(const float* x, float* y, int64_t n, float shift) {
  constexpr int64_t W = sizeof(V) / sizeof(float);
  V acc{};
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    V v;
    std::memcpy(&v, x + i, sizeof v);
    V e = fast_exp_vec<V, IV>(v + shift);
    std::memcpy(y + i, &e, sizeof e);
    acc += e;
  }
  double total = 0;
  for (int k = 0; k < W; ++k) total += acc[k];
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
