// The persistent LSTM scan's kernel bodies and the cell they share with the stepwise kernels, written once for
// two compilers (ops/cuda/block_code.h): nvcc builds them into the CUDA kernels of ops/cuda/lstm_cell.cu, and
// tests/ops/test_lstm_scan_block.cpp runs the same code on the CPU against the CPU scan. Shared memory:
// scan_forward_shared_floats(H, cached) and scan_backward_shared_floats(H, threads, cached).
#pragma once
#include <cstdint>

#include "ops/cuda/block_code.h"

namespace msmix::lstm_scan_block {

constexpr int kScanRows = 4;  // samples per block
constexpr int kScanUnroll = 8;  // w_hh loads in flight per sum: the step's GEMM is bound by their latency

// The backward's dh = ggates @ w_hh splits each column's 4H-long sums into `parts` threads, so that all
// threads of a block have work when H is below the block size (MMSA's H 128: two parts of 256 gates).
MSMIX_HOST_DEVICE constexpr int64_t dh_parts(int64_t H, int64_t threads) { return H >= threads ? 1 : threads / H; }

// The persistent kernels' shared memory, in floats: their state, then a cache of w_hh's first rows (kept on
// chip for all T steps: each step reads all of w_hh, which L2 serves only at its latency). Forward: h and c
// [kScanRows, H], then w_hh^T's rows k < cached [cached, 4H]. Backward: dh and dc [kScanRows, H], the step's gate
// grads [kScanRows, 4H], the parts' partial sums [parts, kScanRows, H], then w_hh's rows j < cached [cached, H].
constexpr int64_t scan_forward_state_floats(int64_t H) { return 2 * kScanRows * H; }
constexpr int64_t scan_backward_state_floats(int64_t H, int64_t threads) {
  return 2 * kScanRows * H + kScanRows * 4 * H + dh_parts(H, threads) * kScanRows * H;
}
constexpr int64_t scan_forward_shared_floats(int64_t H, int64_t cached) {
  return scan_forward_state_floats(H) + cached * 4 * H;
}
constexpr int64_t scan_backward_shared_floats(int64_t H, int64_t threads, int64_t cached) {
  return scan_backward_state_floats(H, threads) + cached * H;
}

// How many of w_hh's rows (forward: w_hh^T's H rows of 4H; backward: w_hh's 4H rows of H) fit on chip beside
// the state, given `floats` of shared memory per block: all, or a multiple of kScanUnroll.
constexpr int64_t cached_rows(int64_t rows, int64_t row_floats, int64_t state_floats, int64_t floats) {
  const int64_t fit = floats > state_floats ? (floats - state_floats) / row_floats : 0;
  return fit >= rows ? rows : fit - fit % kScanUnroll;
}

// Copies rows [0, n) of `src` (rows of `width`) into shared `dst`, all threads striding.
template <class Block>
MSMIX_BLOCK_FN void cache_rows(const Block& blk, const float* src, int64_t n, int64_t width, float* dst) {
  for (int64_t i = blk.thread(); i < n * width; i += blk.threads()) dst[i] = src[i];
}

// The forward's gate sums over k in [k0, k1), w_hh^T's rows k taken from w (shared memory or global, the same
// layout [., 4H]): acc0[r] += sum_k hs[r H + k] w[k G + j0], acc1 likewise with column j1; kScanUnroll loads
// issued together.
MSMIX_BLOCK_FN void gate_sums(const float* hs, const float* w, int64_t H, int64_t G, int64_t j0, int64_t j1,
                              int64_t k0, int64_t k1, float* acc0, float* acc1) {
  int64_t k = k0;
  for (; k + kScanUnroll <= k1; k += kScanUnroll) {
    float w0[kScanUnroll], w1[kScanUnroll];
    MSMIX_UNROLL
    for (int u = 0; u < kScanUnroll; ++u) w0[u] = w[(k + u) * G + j0], w1[u] = w[(k + u) * G + j1];
    MSMIX_UNROLL
    for (int u = 0; u < kScanUnroll; ++u)
      MSMIX_UNROLL
      for (int r = 0; r < kScanRows; ++r) {
        acc0[r] = fmaf(hs[r * H + k + u], w0[u], acc0[r]);
        acc1[r] = fmaf(hs[r * H + k + u], w1[u], acc1[r]);
      }
  }
  for (; k < k1; ++k) {
    const float w0 = w[k * G + j0], w1 = w[k * G + j1];
    MSMIX_UNROLL
    for (int r = 0; r < kScanRows; ++r) {
      acc0[r] = fmaf(hs[r * H + k], w0, acc0[r]);
      acc1[r] = fmaf(hs[r * H + k], w1, acc1[r]);
    }
  }
}

// The backward's dh sums over gates j in [j0, j1) for column k, w_hh's rows j taken from w (shared memory or
// global, the same layout [., H]): acc[r] += sum_j gs[r G + j] w[j H + k]; kScanUnroll loads issued together.
MSMIX_BLOCK_FN void dh_sums(const float* gs, const float* w, int64_t H, int64_t G, int64_t k, int64_t j0, int64_t j1,
                            float* acc) {
  int64_t j = j0;
  for (; j + kScanUnroll <= j1; j += kScanUnroll) {
    float wv[kScanUnroll];
    MSMIX_UNROLL
    for (int u = 0; u < kScanUnroll; ++u) wv[u] = w[(j + u) * H + k];
    MSMIX_UNROLL
    for (int u = 0; u < kScanUnroll; ++u)
      MSMIX_UNROLL
      for (int r = 0; r < kScanRows; ++r) acc[r] = fmaf(gs[r * G + j + u], wv[u], acc[r]);
  }
  for (; j < j1; ++j) {
    const float wv = w[j * H + k];
    MSMIX_UNROLL
    for (int r = 0; r < kScanRows; ++r) acc[r] = fmaf(gs[r * G + j], wv, acc[r]);
  }
}

MSMIX_BLOCK_FN float sigmoid_of(float x) { return 1.0f / (1.0f + expf(-x)); }
MSMIX_BLOCK_FN float tanh_of(float x) { return 2.0f / (1.0f + expf(-2.0f * x)) - 1.0f; }

// gates / acts rows of 4H (acts may alias gates), c_prev, h, c rows of H.
MSMIX_BLOCK_FN void cell_forward(const float* gates, const float* cp, float* acts, float* h, float* c, int64_t H,
                                 int64_t j) {
  const float i = sigmoid_of(gates[j]), f = sigmoid_of(gates[H + j]);
  const float g = tanh_of(gates[2 * H + j]), o = sigmoid_of(gates[3 * H + j]);
  const float cn = f * cp[j] + i * g;
  acts[j] = i, acts[H + j] = f, acts[2 * H + j] = g, acts[3 * H + j] = o;
  c[j] = cn;
  h[j] = o * tanh_of(cn);
}

// gc_prev may alias gc (each element is read before it is written, by the same thread).
MSMIX_BLOCK_FN void cell_backward(const float* acts, const float* cp, float gh, const float* gc, float* ggates,
                                  float* gcp, int64_t H, int64_t j) {
  const float i = acts[j], f = acts[H + j], g = acts[2 * H + j], o = acts[3 * H + j];
  const float cpv = cp[j];
  const float tc = tanh_of(f * cpv + i * g);
  const float dc = gc[j] + gh * o * (1.0f - tc * tc);
  ggates[j] = dc * g * i * (1.0f - i);
  ggates[H + j] = dc * cpv * f * (1.0f - f);
  ggates[2 * H + j] = dc * i * (1.0f - g * g);
  ggates[3 * H + j] = gh * tc * o * (1.0f - o);
  gcp[j] = dc * f;
}

// Block x owns samples b0 = x * kScanRows .. b0 + rows - 1 (the last block may own fewer).
template <class Block>
MSMIX_BLOCK_FN int rows_of_block(const Block& blk, int64_t B) {
  const int64_t left = B - int64_t(blk.block()) * kScanRows;
  return left < kScanRows ? int(left) : kScanRows;
}

// Shared: scan_forward_shared_floats(H, cached): h, c [kScanRows, H], then w_hh^T's rows k < cached. acts
// doubles as the gate buffer.
template <class Block>
MSMIX_BLOCK_FN void scan_forward_persistent(const Block& blk, const float* xgates, const float* wt, const float* h0,
                                            const float* c0, float* y, float* acts, float* h_prev, float* c_prev,
                                            const int64_t* lengths, int64_t T, int64_t B, int64_t H, bool reverse,
                                            int64_t cached) {
  float* hs = blk.shared();
  float* cs = hs + kScanRows * H;
  float* ws = cs + kScanRows * H;
  const int64_t b0 = int64_t(blk.block()) * kScanRows, G = 4 * H, BH = B * H;
  const int rows = rows_of_block(blk, B);
  cache_rows(blk, wt, cached, G, ws);
  for (int64_t i = blk.thread(); i < kScanRows * H; i += blk.threads()) {  // rows past the last sample: 0
    const int64_t at = (b0 + i / H) * H + i % H;
    const bool own = i < rows * H;
    hs[i] = own && h0 ? h0[at] : 0.0f;
    cs[i] = own && c0 ? c0[at] : 0.0f;
  }
  blk.sync();
  for (int64_t step = 0; step < T; ++step) {
    const int64_t t = reverse ? T - 1 - step : step;
    for (int64_t i = blk.thread(); i < rows * H; i += blk.threads()) {  // the state entering step t, for backward
      const int64_t at = t * BH + (b0 + i / H) * H + i % H;
      h_prev[at] = hs[i];
      c_prev[at] = cs[i];
    }
    // gates = xgates_t + h @ w_hh^T for this block's samples: thread j sums gates j and j + threads of every
    // sample at once (each w_hh^T element read once per block and step: the cached rows from shared memory,
    // the rest from L2).
    float* a = acts + (t * B + b0) * G;
    const float* x = xgates + (t * B + b0) * G;
    const int64_t threads = blk.threads();
    for (int64_t j0 = blk.thread(); j0 < G; j0 += 2 * threads) {
      const int64_t j1 = j0 + threads < G ? j0 + threads : j0;  // the second sum repeats the first past G
      float acc0[kScanRows] = {}, acc1[kScanRows] = {};
      gate_sums(hs, ws, H, G, j0, j1, 0, cached, acc0, acc1);
      gate_sums(hs, wt, H, G, j0, j1, cached, H, acc0, acc1);
      MSMIX_UNROLL
      for (int r = 0; r < kScanRows; ++r)
        if (r < rows) {
          a[r * G + j0] = x[r * G + j0] + acc0[r];
          if (j1 != j0) a[r * G + j1] = x[r * G + j1] + acc1[r];
        }
    }
    blk.sync();
    for (int64_t i = blk.thread(); i < rows * H; i += blk.threads()) {
      const int64_t r = i / H, k = i - r * H, b = b0 + r;
      float* yt = y + t * BH + b * H;
      if (t < lengths[b]) {
        cell_forward(a + r * G, cs + r * H, a + r * G, hs + r * H, cs + r * H, H, k);
        yt[k] = hs[i];
      } else {
        yt[k] = 0.0f;
      }
    }
    blk.sync();
  }
  for (int64_t i = blk.thread(); i < rows * H; i += blk.threads()) {  // h_n, c_n
    const int64_t at = (b0 + i / H) * H + i % H;
    y[T * BH + at] = hs[i];
    y[(T + 1) * BH + at] = cs[i];
  }
}

// Shared: scan_backward_shared_floats(H, threads, cached): dh, dc [kScanRows, H], the grads of the state leaving
// the step being undone; gs [kScanRows, 4H], the step's gate grads; partial [parts, kScanRows, H], the parts'
// sums of dh; then w_hh's rows j < cached.
template <class Block>
MSMIX_BLOCK_FN void scan_backward_persistent(const Block& blk, const float* gy, const float* w, const float* acts,
                                             const float* c_prev, float* gx, float* gh0, float* gc0,
                                             const int64_t* lengths, int64_t T, int64_t B, int64_t H, bool reverse,
                                             int64_t cached) {
  const int64_t b0 = int64_t(blk.block()) * kScanRows, G = 4 * H, BH = B * H;
  const int64_t parts = dh_parts(H, blk.threads());
  float* dh = blk.shared();
  float* dc = dh + kScanRows * H;
  float* gs = dc + kScanRows * H;
  float* partial = gs + kScanRows * G;
  float* ws = partial + parts * kScanRows * H;
  const int rows = rows_of_block(blk, B);
  cache_rows(blk, w, cached, H, ws);
  for (int64_t i = blk.thread(); i < kScanRows * G; i += blk.threads()) gs[i] = 0.0f;  // rows past the last: 0
  for (int64_t i = blk.thread(); i < rows * H; i += blk.threads()) {  // from the grads of h_n and c_n
    const int64_t at = (b0 + i / H) * H + i % H;
    dh[i] = gy[T * BH + at];
    dc[i] = gy[(T + 1) * BH + at];
  }
  blk.sync();
  for (int64_t step = T - 1; step >= 0; --step) {
    const int64_t t = reverse ? T - 1 - step : step;
    for (int64_t i = blk.thread(); i < rows * H; i += blk.threads()) {
      const int64_t r = i / H, k = i - r * H, b = b0 + r;
      const int64_t row = (t * B + b) * G;
      float* g = gs + r * G;
      if (t < lengths[b])
        cell_backward(acts + row, c_prev + t * BH + b * H, dh[i] + gy[t * BH + b * H + k], dc + r * H, g,
                      dc + r * H, H, k);
      else
        for (int q = 0; q < 4; ++q) g[q * H + k] = 0.0f;
      for (int q = 0; q < 4; ++q) gx[row + q * H + k] = g[q * H + k];
    }
    blk.sync();
    // dh = ggates_t @ w_hh: thread (part, k) sums gates [G part / parts, G (part + 1) / parts) of column k for
    // every sample at once (w_hh read once per block and step: the cached rows from shared memory, the rest
    // from L2).
    for (int64_t i = blk.thread(); i < parts * H; i += blk.threads()) {
      const int64_t part = i / H, k = i - part * H, begin = G * part / parts, end = G * (part + 1) / parts;
      const int64_t split = begin > cached ? begin : (end < cached ? end : cached);  // clamp(cached, begin, end)
      float acc[kScanRows] = {};
      dh_sums(gs, ws, H, G, k, begin, split, acc);
      dh_sums(gs, w, H, G, k, split, end, acc);
      MSMIX_UNROLL
      for (int r = 0; r < kScanRows; ++r) partial[(part * kScanRows + r) * H + k] = acc[r];
    }
    blk.sync();
    // The samples that took part in step t take the parts' sum (the others keep their dh).
    for (int64_t i = blk.thread(); i < rows * H; i += blk.threads()) {
      const int64_t r = i / H, k = i - r * H;
      if (t >= lengths[b0 + r]) continue;
      float sum = 0.0f;
      for (int64_t part = 0; part < parts; ++part) sum += partial[(part * kScanRows + r) * H + k];
      dh[i] = sum;
    }
    blk.sync();
  }
  for (int64_t i = blk.thread(); i < rows * H; i += blk.threads()) {
    const int64_t at = (b0 + i / H) * H + i % H;
    if (gh0) gh0[at] = dh[i];
    if (gc0) gc0[at] = dc[i];
  }
}

}  // namespace msmix::lstm_scan_block
