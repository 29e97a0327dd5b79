// A vectorised expf. glibc's vector expf is only declared under -ffast-math, and GCC will not vectorise a
// clamped polynomial by itself (it threads the clamp into branches), so this is written with GCC's portable
// vector extensions: 4 floats at a time (one SSE register, baseline x86-64), plus the same code one lane at a time for loop tails.
// Method: e^x = 2^n * e^r with n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2] (ln 2 split in a high
// and a low part so r is exact), e^r by its degree-6 Taylor polynomial (truncation < 1.2e-7 relative), and 2^n
// built in the exponent bits as two halves so that overflow (inf) and underflow (denormals, then 0) happen in
// the final products. Max error about 4 ulp; NaN stays NaN; -inf gives exactly 0 (masked softmax entries).
#pragma once
#include <cstdint>
#include <cstring>

namespace msmix::cpu {

typedef float Vec4 __attribute__((vector_size(16)));
typedef int32_t IVec4 __attribute__((vector_size(16)));

inline Vec4 fast_exp4(Vec4 x) {
  const float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  const float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits
  // Clamp (beyond it the result is inf / 0 anyway); a NaN lane fails both compares and passes through.
  Vec4 xc = x < -104.0f ? Vec4{} - 104.0f : x;
  xc = xc > 89.0f ? Vec4{} + 89.0f : xc;
  Vec4 t = xc * kLog2e + kRound;
  Vec4 n = t - kRound;
  Vec4 r = (xc - n * kLn2Hi) - n * kLn2Lo;
  Vec4 p = Vec4{} + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  IVec4 ti, round_bits;
  std::memcpy(&ti, &t, sizeof ti);
  Vec4 round_vec = Vec4{} + kRound;
  std::memcpy(&round_bits, &round_vec, sizeof round_bits);
  IVec4 ni = ti - round_bits;
  IVec4 half = ni >> 1;
  IVec4 e1 = (half + 127) << 23, e2 = (ni - half + 127) << 23;
  Vec4 s1, s2;
  std::memcpy(&s1, &e1, sizeof s1);
  std::memcpy(&s2, &e2, sizeof s2);
  return p * s1 * s2;
}

inline float fast_exp(float x) {
  Vec4 v = Vec4{} + x;
  return fast_exp4(v)[0];
}

// y[i] = exp(x[i] + shift) for i < n; returns the sum of the y[i] (double accumulation per lane).
inline double exp_shift_sum(const float* x, float* y, int64_t n, float shift) {
  Vec4 acc{};
  double total = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    Vec4 v;
    std::memcpy(&v, x + i, sizeof v);
    Vec4 e = fast_exp4(v + shift);
    std::memcpy(y + i, &e, sizeof e);
    acc += e;
  }
  for (int k = 0; k < 4; ++k) total += acc[k];
  for (; i < n; ++i) total += (y[i] = fast_exp(x[i] + shift));
  return total;
}

// y[i] = exp(x[i]) for i < n.
inline void exp_array(const float* x, float* y, int64_t n) { exp_shift_sum(x, y, n, 0.0f); }

}  // namespace msmix::cpu
