// Row kernels written once over a GCC vector type V (see vec_impl.h): sums, layer norm and softmax of one
// row of C contiguous floats. ops/cpu/fast_math.cpp instantiates them for SSE2, ops/cpu/fast_math_avx2.cpp
// for AVX2 + FMA, and the op kernels (reduce.cpp, norm.cpp, softmax.cpp) call them through the table in
// fast_math.h, one call per row, rows in parallel. Passes after the first over a row read it from L1.
#pragma once
#include <cmath>

#include "ops/cpu/fast_exp_impl.h"
#include "ops/cpu/vec_impl.h"

namespace msmix::cpu {

// sum of x[0, n), blocked (vec_impl.h: error < 2.2e-6 of sum |x| for any n).
template <class V>
static inline double sum_vec(const float* x, int64_t n) {
  double s;
  blocked_sum<V, 1>(
      n, [=](int64_t i) { return Terms<V, 1>{load<V>(x + i)}; },
      [=](int64_t i) { return Terms<float, 1>{x[i]}; }, &s);
  return s;
}

// dst[i] += src[i]
template <class V>
static inline void add_into_vec(float* dst, const float* src, int64_t n) {
  constexpr int64_t W = lanes<V>();
  int64_t i = 0;
  for (; i + W <= n; i += W) store(dst + i, load<V>(dst + i) + load<V>(src + i));
  for (; i < n; ++i) dst[i] += src[i];
}

// out[i] = a[i] op b[i], op one of '+', '-', '*', '/'; two vectors per step.
template <char Op, class T>
static inline T apply_op(T x, T y) {
  if constexpr (Op == '+') return x + y;
  else if constexpr (Op == '-') return x - y;
  else if constexpr (Op == '*') return x * y;
  else return x / y;
}

template <class V, char Op>
static inline void binary_vec(const float* a, const float* b, float* out, int64_t n) {
  constexpr int64_t W = lanes<V>();
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    V a0 = load<V>(a + i), a1 = load<V>(a + i + W), b0 = load<V>(b + i), b1 = load<V>(b + i + W);
    store(out + i, apply_op<Op>(a0, b0));
    store(out + i + W, apply_op<Op>(a1, b1));
  }
  for (; i < n; ++i) out[i] = apply_op<Op>(a[i], b[i]);
}

// y = (x - mean) * rstd * weight + bias over one row; weight / bias may be null. Two passes for the statistics
// (the mean, then the biased variance around it: no cancellation), both blocked sums.
template <class V>
static inline void layer_norm_row_vec(const float* x, const float* weight, const float* bias, float* y, int64_t C,
                                      float eps, float* mean_out, float* rstd_out) {
  constexpr int64_t W = lanes<V>();
  const float m = float(sum_vec<V>(x, C) / double(C));
  double v;
  blocked_sum<V, 1>(
      C,
      [=](int64_t i) {
        V d = load<V>(x + i) - m;
        return Terms<V, 1>{d * d};
      },
      [=](int64_t i) { return Terms<float, 1>{(x[i] - m) * (x[i] - m)}; }, &v);
  const float rs = float(1.0 / std::sqrt(v / double(C) + double(eps)));
  *mean_out = m;
  *rstd_out = rs;
  int64_t i = 0;
  if (weight && bias) {
    for (; i + W <= C; i += W) store(y + i, (load<V>(x + i) - m) * rs * load<V>(weight + i) + load<V>(bias + i));
    for (; i < C; ++i) y[i] = (x[i] - m) * rs * weight[i] + bias[i];
  } else if (weight) {
    for (; i + W <= C; i += W) store(y + i, (load<V>(x + i) - m) * rs * load<V>(weight + i));
    for (; i < C; ++i) y[i] = (x[i] - m) * rs * weight[i];
  } else if (bias) {
    for (; i + W <= C; i += W) store(y + i, (load<V>(x + i) - m) * rs + load<V>(bias + i));
    for (; i < C; ++i) y[i] = (x[i] - m) * rs + bias[i];
  } else {
    for (; i + W <= C; i += W) store(y + i, (load<V>(x + i) - m) * rs);
    for (; i < C; ++i) y[i] = (x[i] - m) * rs;
  }
}

// One row of layer norm's backward, with xhat = (x - m) * rs and d = g * weight (g without weight):
//   pw += g * xhat, pb += g (the caller's partial sums for gweight / gbias; both null when not wanted)
//   gx = rs * (d - mean(d) - xhat * mean(d * xhat))   (gx null when not wanted)
template <class V>
static inline void layer_norm_row_backward_vec(const float* x, const float* weight, float m, float rs, const float* g,
                                               float* gx, float* pw, float* pb, int64_t C) {
  constexpr int64_t W = lanes<V>();
  if (pw) {
    int64_t i = 0;
    for (; i + W <= C; i += W) {
      V gv = load<V>(g + i);
      store(pw + i, load<V>(pw + i) + gv * ((load<V>(x + i) - m) * rs));
      store(pb + i, load<V>(pb + i) + gv);
    }
    for (; i < C; ++i) {
      pw[i] += g[i] * ((x[i] - m) * rs);
      pb[i] += g[i];
    }
  }
  if (!gx) return;
  auto dv = [=](int64_t i) { return weight ? load<V>(g + i) * load<V>(weight + i) : load<V>(g + i); };
  auto d1 = [=](int64_t i) { return weight ? g[i] * weight[i] : g[i]; };
  double sums[2];
  blocked_sum<V, 2>(
      C,
      [=](int64_t i) {
        V d = dv(i);
        return Terms<V, 2>{d, d * ((load<V>(x + i) - m) * rs)};
      },
      [=](int64_t i) {
        float d = d1(i);
        return Terms<float, 2>{d, d * ((x[i] - m) * rs)};
      },
      sums);
  const float a = float(sums[0] / double(C)), b = float(sums[1] / double(C));
  int64_t i = 0;
  for (; i + W <= C; i += W) store(gx + i, rs * (dv(i) - a - (load<V>(x + i) - m) * rs * b));
  for (; i < C; ++i) gx[i] = rs * (d1(i) - a - (x[i] - m) * rs * b);
}

template <class V>
static inline float row_max_vec(const float* x, int64_t n) {
  constexpr int64_t W = lanes<V>();
  float m = -INFINITY;
  int64_t i = 0;
  if (n >= W) {
    // Four accumulators: one would wait on the max latency every vector.
    V acc[4] = {load<V>(x), load<V>(x), load<V>(x), load<V>(x)};
    for (i = W; i + 4 * W <= n; i += 4 * W)
      for (int u = 0; u < 4; ++u) acc[u] = max_keep_nan(acc[u], load<V>(x + i + u * W));
    for (; i + W <= n; i += W) acc[0] = max_keep_nan(acc[0], load<V>(x + i));
    m = lane_max(max_keep_nan(max_keep_nan(acc[0], acc[1]), max_keep_nan(acc[2], acc[3])));
  }
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

// One row of softmax (log: log_softmax), shifted by the row max. A NaN in the row makes the row sum NaN, so
// the whole row is NaN; an all -inf row gives x - max = NaN, as PyTorch.
template <class V, class IV>
static inline void softmax_row_vec(const float* x, float* y, int64_t C, bool log) {
  constexpr int64_t W = lanes<V>();
  const float m = row_max_vec<V>(x, C);
  const double s = exp_shift_sum_vec<V, IV>(x, y, C, -m);  // y holds exp(x - m); scratch for log
  int64_t i = 0;
  if (log) {
    const float shift = m + float(std::log(s));
    for (; i + W <= C; i += W) store(y + i, load<V>(x + i) - shift);
    for (; i < C; ++i) y[i] = x[i] - shift;
  } else {
    const float inv = float(1.0 / s);
    for (; i + W <= C; i += W) store(y + i, load<V>(y + i) * inv);
    for (; i < C; ++i) y[i] *= inv;
  }
}

// One row of softmax's backward from its output y: gx = y * (g - sum(g * y)); log_softmax: gx = g - exp(y) sum(g).
template <class V, class IV>
static inline void softmax_row_backward_vec(const float* y, const float* g, float* gx, int64_t C, bool log) {
  constexpr int64_t W = lanes<V>();
  double s;
  int64_t i = 0;
  if (log) {
    s = sum_vec<V>(g, C);
    exp_shift_sum_vec<V, IV>(y, gx, C, 0.0f);  // the probabilities
    const float sf = float(s);
    for (; i + W <= C; i += W) store(gx + i, load<V>(g + i) - load<V>(gx + i) * sf);
    for (; i < C; ++i) gx[i] = g[i] - gx[i] * sf;
  } else {
    blocked_sum<V, 1>(
        C, [=](int64_t k) { return Terms<V, 1>{load<V>(g + k) * load<V>(y + k)}; },
        [=](int64_t k) { return Terms<float, 1>{g[k] * y[k]}; }, &s);
    const float sf = float(s);
    for (; i + W <= C; i += W) store(gx + i, load<V>(y + i) * (load<V>(g + i) - sf));
    for (; i < C; ++i) gx[i] = y[i] * (g[i] - sf);
  }
}

}  // namespace msmix::cpu
