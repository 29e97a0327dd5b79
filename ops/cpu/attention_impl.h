// The per-head kernels of ops/cpu/attention.cpp, written once over a GCC vector type V of W floats. That file
// includes this one three times, each inside its own namespace and `#pragma GCC target` region (AVX-512F,
// AVX2 + FMA, baseline SSE2), with V, W and the shared parts (Head, Scratch, rows_per_block, padded_keys,
// pack_transposed, the includes) already declared: so every function here is compiled once per instruction
// set, as a per-file -m flag would.
// Rows over the keys have a stride ld = padded_keys (a multiple of 16) and run in whole vectors: row r's
// loops stop at its extent rounded up to W (keys past the extent are masked: probability 0; keys past S are
// padding with zero k and v, masked as -inf here). No include guard on purpose.

static inline V vload(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
static inline void vstore(float* p, V v) { std::memcpy(p, &v, sizeof v); }
// Horizontal sum and max by halves (register shuffles; a template so only the branch for V's width is
// instantiated).
template <class T>
static inline float hsum(T v) {
  if constexpr (sizeof(T) == 64) {
    return hsum(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15));
  } else if constexpr (sizeof(T) == 32) {
    return hsum(__builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7));
  } else {
    const T w = v + __builtin_shufflevector(v, v, 2, 3, 0, 1);
    return w[0] + w[1];
  }
}
template <class T>
static inline float hmax(T v) {
  if constexpr (sizeof(T) == 64) {
    const auto a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7);
    const auto b = __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    return hmax(a > b ? a : b);
  } else if constexpr (sizeof(T) == 32) {
    const auto a = __builtin_shufflevector(v, v, 0, 1, 2, 3), b = __builtin_shufflevector(v, v, 4, 5, 6, 7);
    return hmax(a > b ? a : b);
  } else {
    const T b = __builtin_shufflevector(v, v, 2, 3, 0, 1), w = v > b ? v : b;
    return w[0] > w[1] ? w[0] : w[1];
  }
}
static inline int64_t round_up(int64_t n) { return (n + W - 1) / W * W; }
static inline void zero(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = 0;
}

// row[s] = sum_j c[j] xT[j][s] (+ mask[s]; -inf where pad[s] != 0 or s >= S) for s < round_up(len), xT rows
// of ld floats; returns max_s row[s]. One pass: the D products of a vector of keys accumulate in a register.
// The mask and padding rows hold S floats: the vector that crosses S reads them through a copy.
static inline float combine_row(const float* c, const float* xT, int64_t ld, int64_t D, int64_t len, int64_t S,
                                const float* mask, const float* pad, float* row) {
  const float inf = std::numeric_limits<float>::infinity();
  V vmax = V{} - inf;
  for (int64_t s = 0; s < len; s += W) {
    V acc = c[0] * vload(xT + s);
    for (int64_t j = 1; j < D; ++j) acc += c[j] * vload(xT + j * ld + s);
    if (s + W <= S) {
      if (mask) acc += vload(mask + s);
      if (pad) acc = vload(pad + s) != 0 ? V{} - inf : acc;
    } else {  // keys s..S-1 are real, the rest of the vector is padding
      if (mask || pad) {
        float m[W] = {}, q[W] = {};
        for (int64_t k = 0; s + k < S; ++k) m[k] = mask ? mask[s + k] : 0.0f, q[k] = pad ? pad[s + k] : 0.0f;
        acc += vload(m);
        acc = vload(q) != 0 ? V{} - inf : acc;
      }
      static const float lanes[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
      acc = vload(lanes) < float(S - s) ? acc : V{} - inf;
    }
    vstore(row + s, acc);
    vmax = acc > vmax ? acc : vmax;
  }
  return hmax(vmax);
}

// sum_s x[s] y[s] for s < len (a multiple of W), two vector accumulators.
static inline float dot(const float* x, const float* y, int64_t len) {
  V a0{}, a1{};
  int64_t s = 0;
  for (; s + 2 * W <= len; s += 2 * W) {
    a0 += vload(x + s) * vload(y + s);
    a1 += vload(x + s + W) * vload(y + s + W);
  }
  if (s < len) a0 += vload(x + s) * vload(y + s);
  return hsum(a0 + a1);
}

// yT[j][s] += sum_r c[r * D + j] x[r][s] for j < D, r < n, s < len (a multiple of W; x and yT rows of ld
// floats): a block of rows folded into the transposed grads of k or v, each vector of yT loaded and stored
// once per block. Four vectors of keys at a time: four independent add chains over the rows instead of one.
static inline void accumulate_block(const float* c, const float* x, int64_t ld, int64_t n, int64_t D, int64_t len,
                                    float* yT) {
  for (int64_t j = 0; j < D; ++j) {
    float* y = yT + j * ld;
    int64_t s = 0;
    for (; s + 4 * W <= len; s += 4 * W) {
      V a0 = vload(y + s), a1 = vload(y + s + W), a2 = vload(y + s + 2 * W), a3 = vload(y + s + 3 * W);
      for (int64_t r = 0; r < n; ++r) {
        const float cr = c[r * D + j];
        const float* xr = x + r * ld + s;
        a0 += cr * vload(xr), a1 += cr * vload(xr + W), a2 += cr * vload(xr + 2 * W), a3 += cr * vload(xr + 3 * W);
      }
      vstore(y + s, a0), vstore(y + s + W, a1), vstore(y + s + 2 * W, a2), vstore(y + s + 3 * W, a3);
    }
    for (; s < len; s += W) {
      V acc = vload(y + s);
      for (int64_t r = 0; r < n; ++r) acc += c[r * D + j] * vload(x + r * ld + s);
      vstore(y + s, acc);
    }
  }
}

static inline void scale_row(float* row, int64_t len, float c) {
  for (int64_t s = 0; s < len; s += W) vstore(row + s, vload(row + s) * c);
}

// The grad of one probability row, ds[s] for s < len, returning sum_s p[s] ds[s] (softmax's backward needs it):
// dPd = g . vT[:, s] (dO V^T), then dP = dropout(dPd) without drawing the mask again: where P != 0,
// Pd = P * scale != 0 exactly when the element was kept; where P == 0 the element's dP only meets P (in the
// row sum and in P * (dP - t)), so 0 gives the same grads as the kept value would.
static inline float probability_grad_row(const float* g, const float* vT, int64_t ld, int64_t D, int64_t len,
                                         const float* p, const float* pd, bool dropout, float scale, float* ds) {
  V vt{};
  for (int64_t s = 0; s < len; s += W) {
    V acc = g[0] * vload(vT + s);
    for (int64_t j = 1; j < D; ++j) acc += g[j] * vload(vT + j * ld + s);
    if (dropout) acc = vload(pd + s) != 0 ? acc * scale : V{};
    vstore(ds + s, acc);
    vt += vload(p + s) * acc;
  }
  return hsum(vt);
}

// ds[s] = p[s] * (ds[s] - t): softmax's backward on a row, t = sum_s p[s] ds[s].
static inline void softmax_grad_row(const float* p, float* ds, int64_t len, float t) {
  for (int64_t s = 0; s < len; s += W) vstore(ds + s, vload(p + s) * (vload(ds + s) - t));
}

// Rows [l0, l0 + n) of q times scale, packed [n, D] (the dot products' left factors and dK's coefficients).
static inline void scaled_q_block(const Head& hd, int64_t l0, int64_t n, float* qs) {
  for (int64_t r = 0; r < n; ++r) {
    const float* q = hd.q_row(l0 + r);
    for (int64_t j = 0; j < hd.d.D; ++j) qs[r * hd.d.D + j] = q[j] * hd.a.scale;
  }
}

// Probabilities of rows [l0, l0 + n) into p (rows of ld, exactly 0 from each row's extent on), before dropout:
// exp(x - max) through the shared vectorised exp, then times float(1 / sum) as softmax's row kernel. With
// stats_in (the backward) max and 1 / sum come from the forward, so the rows are the forward's bits;
// otherwise they go to stats_out. extent[r] gets row r's extent rounded up to W; returns the largest.
static inline int64_t probability_rows(const Head& hd, int64_t l0, int64_t n, const float* qs, const float* kT,
                                       float* p, int64_t* extent, const float* stats_in, float* stats_out) {
  const int64_t S = hd.d.S, D = hd.d.D, ld = padded_keys(hd.d);
  const VecKernels& vk = vec_kernels();
  const float* pad = hd.padding();
  int64_t widest = 0;
  for (int64_t r = 0; r < n; ++r) {
    float* row = p + r * ld;
    const int64_t open = hd.extent(l0 + r), e = round_up(open);  // keys past `open` are masked: probability 0
    extent[r] = e, widest = e > widest ? e : widest;
    const float m_row = combine_row(qs + r * D, kT, ld, D, e, S, hd.mask_row(l0 + r), pad, row);
    float m, inv;
    if (stats_in) {
      m = stats_in[2 * r], inv = stats_in[2 * r + 1];
      vk.exp_shift_sum(row, row, open, -m);
    } else {
      m = m_row;
      inv = float(1.0 / vk.exp_shift_sum(row, row, open, -m));
      stats_out[2 * r] = m, stats_out[2 * r + 1] = inv;
    }
    zero(row + open, ld - open);
    scale_row(row, e, inv);
  }
  return widest;
}

// dst = dropout(src) on rows [l0, l0 + n), each row its stretch of the stream [stream_index(l), + S) up to
// its extent; dst is 0 past it (src is too).
static inline void drop_rows(const Head& hd, int64_t l0, int64_t n, const float* src, float* dst,
                             const int64_t* extent) {
  const AttentionArgs& a = hd.a;
  const int64_t S = hd.d.S, ld = padded_keys(hd.d);
  for (int64_t r = 0; r < n; ++r) {
    const int64_t e = extent[r] < S ? extent[r] : S;
    dropout_apply_range(src + r * ld, dst + r * ld, hd.stream_index(l0 + r), e, a.dropout_p, a.dropout_scale, a.seed,
                        a.offset);
    if (dst != src) zero(dst + r * ld + e, ld - e);
  }
}

static void forward_head(const Head& hd, float* out, float* stats, Scratch& w) {
  const AttentionDims& d = hd.d;
  const int64_t D = d.D, E = d.H * D, ld = padded_keys(d), rows = rows_per_block(d);
  float *kT = w.kT.data(), *vT = w.vT.data(), *p = w.p.data(), *qs = w.qs.data();
  int64_t* extent = w.extent.data();
  pack_transposed(hd.a.k, d, hd.b, hd.h, kT);
  pack_transposed(hd.a.v, d, hd.b, hd.h, vT);
  for (int64_t l0 = 0; l0 < d.L; l0 += rows) {
    const int64_t n = rows < d.L - l0 ? rows : d.L - l0;
    scaled_q_block(hd, l0, n, qs);
    probability_rows(hd, l0, n, qs, kT, p, extent, nullptr, stats + (hd.bh * d.L + l0) * 2);
    if (hd.a.dropout) drop_rows(hd, l0, n, p, p, extent);
    for (int64_t r = 0; r < n; ++r) {
      float* o = out + (hd.b * d.L + l0 + r) * E + hd.h * D;
      for (int64_t j = 0; j < D; ++j) o[j] = dot(p + r * ld, vT + j * ld, extent[r]);
    }
  }
}

// FlashAttention's backward for one head: with P the probabilities, Pd = dropout(P), O = Pd V:
//   dV = Pd^T dO;  dPd = dO V^T;  dP = dropout(dPd) (same mask and scale);
//   dS = P * (dP - rowsum(P * dP)) (softmax);  dq = scale * dS K;  dK = dS^T (q * scale).
static void backward_head(const Head& hd, const float* stats, const float* gout, float* gq, float* gk, float* gv,
                          Scratch& w) {
  const AttentionDims& d = hd.d;
  const AttentionArgs& a = hd.a;
  const int64_t S = d.S, D = d.D, E = d.H * D, ld = padded_keys(d), rows = rows_per_block(d);
  float *kT = w.kT.data(), *vT = w.vT.data(), *dkT = w.dkT.data(), *dvT = w.dvT.data();
  float *p = w.p.data(), *dp = w.dp.data(), *qs = w.qs.data(), *gs = w.gs.data();
  int64_t* extent = w.extent.data();
  pack_transposed(a.k, d, hd.b, hd.h, kT);
  pack_transposed(a.v, d, hd.b, hd.h, vT);
  zero(dkT, D * ld);
  zero(dvT, D * ld);
  for (int64_t l0 = 0; l0 < d.L; l0 += rows) {
    const int64_t n = rows < d.L - l0 ? rows : d.L - l0;
    scaled_q_block(hd, l0, n, qs);
    const int64_t widest = probability_rows(hd, l0, n, qs, kT, p, extent, stats + (hd.bh * d.L + l0) * 2, nullptr);
    const float* pd = p;  // the dropped probabilities
    if (a.dropout) {
      drop_rows(hd, l0, n, p, w.pd.data(), extent);
      pd = w.pd.data();
    }
    for (int64_t r = 0; r < n; ++r) {  // this block's rows of dO, packed [n, D]
      const float* g = gout + (hd.b * d.L + l0 + r) * E + hd.h * D;
      for (int64_t j = 0; j < D; ++j) gs[r * D + j] = g[j];
    }
    if (gv) accumulate_block(gs, pd, ld, n, D, widest, dvT);
    if (!gq && !gk) continue;
    for (int64_t r = 0; r < n; ++r) {
      const int64_t e = extent[r];
      const float* p_row = p + r * ld;
      float* ds = dp + r * ld;
      const float t =
          probability_grad_row(gs + r * D, vT, ld, D, e, p_row, pd + r * ld, a.dropout, a.dropout_scale, ds);
      softmax_grad_row(p_row, ds, e, t);
      zero(ds + e, widest - e);
      if (gq) {
        float* gq_row = gq + (hd.b * d.L + l0 + r) * E + hd.h * D;
        for (int64_t j = 0; j < D; ++j) gq_row[j] = dot(ds, kT + j * ld, e) * a.scale;
      }
    }
    if (gk) accumulate_block(qs, dp, ld, n, D, widest, dkT);
  }
  for (int64_t s = 0; s < S; ++s) {
    const int64_t at = (hd.b * S + s) * E + hd.h * D;
    for (int64_t j = 0; j < D; ++j) {
      if (gk) gk[at + j] = dkT[j * ld + s];
      if (gv) gv[at + j] = dvT[j * ld + s];
    }
  }
}
