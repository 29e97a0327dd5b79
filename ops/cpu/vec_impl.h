// Helpers for kernels written once over a GCC vector type V (Vec4: SSE2, baseline x86-64; Vec8: AVX2 + FMA,
// instantiated only in ops/cpu/fast_math_avx2.cpp). Everything is `static` for the reason given in
// fast_exp_impl.h: internal linkage keeps AVX2 code out of callers built for baseline x86-64.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace msmix::cpu {

template <class V>
static constexpr int64_t lanes() {
  return int64_t(sizeof(V) / sizeof(float));
}

template <class V>
static inline V load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <class V>
static inline void store(float* p, V v) {
  std::memcpy(p, &v, sizeof v);
}

// lo where x < lo, else x; a NaN lane stays NaN. maxps(a, b) returns b when the compare is unordered, so the
// bound goes first. (GCC lowers the same ternary to compare + blend, 2-3 times the uops.)
template <class V>
static inline V max_keep_nan(V lo, V x) {
  if constexpr (sizeof(V) == 32) return V(_mm256_max_ps(__m256(lo), __m256(x)));
  else return V(_mm_max_ps(__m128(lo), __m128(x)));
}

// hi where x > hi, else x; a NaN lane stays NaN.
template <class V>
static inline V min_keep_nan(V hi, V x) {
  if constexpr (sizeof(V) == 32) return V(_mm256_min_ps(__m256(hi), __m256(x)));
  else return V(_mm_min_ps(__m128(hi), __m128(x)));
}

// Lanes summed in double (exact conversions; W terms).
template <class V>
static inline double lane_sum(V v) {
  double s = 0;
  for (int64_t k = 0; k < lanes<V>(); ++k) s += double(v[k]);
  return s;
}

template <class V>
static inline float lane_max(V v) {
  float m = v[0];
  for (int64_t k = 1; k < lanes<V>(); ++k) m = v[k] > m ? v[k] : m;
  return m;
}

// K values returned by value from the term functions below. A plain aggregate (no member functions), so no
// out-of-line code of it can be shared between the SSE2 and AVX2 objects.
template <class T, int K>
struct Terms {
  T v[K];
};

// Blocked float summation of K per-element terms over i in [0, n):
//   vec(i) -> Terms<V, K>      the terms of elements i .. i + W - 1
//   one(i) -> Terms<float, K>  the terms of element i alone (the last < W elements)
// Why it is accurate: n is cut into blocks in which every lane of every accumulator adds at most
// kLaneTerms + U terms in float; a block's accumulators are added in a tree and its lanes in double, and the
// block totals are added in double. Float rounding therefore grows with the block, not with n: the error is
// at most about (kLaneTerms + U + 2) * 2^-24 * sum |term| (< 2.2e-6 relative to sum |term|; random-walk
// typical about 4e-7), where a plain float loop allows (n - 1) * 2^-24. The vector lanes and U independent
// accumulators also break the add latency chain, so the loop runs at load speed.
template <class V, int K, class FV, class F1>
static inline void blocked_sum(int64_t n, FV vec, F1 one, double* out) {
  constexpr int64_t W = lanes<V>(), U = K == 1 ? 4 : 2, kLaneTerms = 32, kBlock = U * W * kLaneTerms;
  for (int k = 0; k < K; ++k) out[k] = 0;
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t end = n - start < kBlock ? n : start + kBlock;
    V acc[U][K] = {};
    int64_t i = start;
    for (; i + U * W <= end; i += U * W)
      for (int64_t u = 0; u < U; ++u) {
        auto t = vec(i + u * W);
        for (int k = 0; k < K; ++k) acc[u][k] += t.v[k];
      }
    for (; i + W <= end; i += W) {  // fewer than U vectors left: each lane gets at most U - 1 more terms
      auto t = vec(i);
      for (int k = 0; k < K; ++k) acc[0][k] += t.v[k];
    }
    for (int k = 0; k < K; ++k) {
      V s = acc[0][k];
      if constexpr (U == 4) s = (acc[0][k] + acc[1][k]) + (acc[2][k] + acc[3][k]);
      else s = acc[0][k] + acc[1][k];
      out[k] += lane_sum(s);
    }
    for (; i < end; ++i) {
      auto t = one(i);
      for (int k = 0; k < K; ++k) out[k] += double(t.v[k]);
    }
  }
}

}  // namespace msmix::cpu
