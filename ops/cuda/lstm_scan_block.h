// The persistent LSTM scan's kernel bodies and the cell they share with the stepwise kernels, written once for
// two compilers (ops/cuda/block_code.h): nvcc builds them into the CUDA kernels of ops/cuda/lstm_cell.cu, and
// tests/ops/test_lstm_scan_block.cpp runs the same code on the CPU against the CPU scan. Shared memory:
// scan_shared_floats(H).
#pragma once
#include <cstdint>

#include "ops/cuda/block_code.h"

namespace msmix::lstm_scan_block {

constexpr int kScanRows = 4;  // samples per block

// The persistent kernels' shared memory, in floats: two [kScanRows, H] states (h and c, or dh and dc).
constexpr int64_t scan_shared_floats(int64_t H) { return 2 * kScanRows * H; }

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

// Shared: h, c [kScanRows, H]. acts doubles as the gate buffer.
template <class Block>
MSMIX_BLOCK_FN void scan_forward_persistent(const Block& blk, const float* xgates, const float* wt, const float* h0,
                                            const float* c0, float* y, float* acts, float* h_prev, float* c_prev,
                                            const int64_t* lengths, int64_t T, int64_t B, int64_t H, bool reverse) {
  float* state = blk.shared();
  float* hs = state;
  float* cs = state + kScanRows * H;
  const int64_t b0 = int64_t(blk.block()) * kScanRows, G = 4 * H, BH = B * H;
  const int rows = rows_of_block(blk, B);
  for (int64_t i = blk.thread(); i < rows * H; i += blk.threads()) {
    const int64_t at = (b0 + i / H) * H + i % H;
    hs[i] = h0 ? h0[at] : 0.0f;
    cs[i] = c0 ? c0[at] : 0.0f;
  }
  blk.sync();
  for (int64_t step = 0; step < T; ++step) {
    const int64_t t = reverse ? T - 1 - step : step;
    for (int64_t i = blk.thread(); i < rows * H; i += blk.threads()) {  // the state entering step t, for backward
      const int64_t at = t * BH + (b0 + i / H) * H + i % H;
      h_prev[at] = hs[i];
      c_prev[at] = cs[i];
    }
    // gates = xgates_t + h @ w_hh^T, row by row of this block's samples
    float* a = acts + (t * B + b0) * G;
    const float* x = xgates + (t * B + b0) * G;
    for (int64_t j = blk.thread(); j < G; j += blk.threads()) {
      float acc[kScanRows] = {};
      for (int64_t k = 0; k < H; ++k) {
        const float w = wt[k * G + j];
        MSMIX_UNROLL
        for (int r = 0; r < kScanRows; ++r)
          if (r < rows) acc[r] = fmaf(hs[r * H + k], w, acc[r]);
      }
      MSMIX_UNROLL
      for (int r = 0; r < kScanRows; ++r)
        if (r < rows) a[r * G + j] = x[r * G + j] + acc[r];
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

// Shared: dh, dc [kScanRows, H], the grads of the state leaving the step being undone.
template <class Block>
MSMIX_BLOCK_FN void scan_backward_persistent(const Block& blk, const float* gy, const float* w, const float* acts,
                                             const float* c_prev, float* gx, float* gh0, float* gc0,
                                             const int64_t* lengths, int64_t T, int64_t B, int64_t H, bool reverse) {
  float* state = blk.shared();
  float* dh = state;
  float* dc = state + kScanRows * H;
  const int64_t b0 = int64_t(blk.block()) * kScanRows, G = 4 * H, BH = B * H;
  const int rows = rows_of_block(blk, B);
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
      if (t < lengths[b]) {
        cell_backward(acts + row, c_prev + t * BH + b * H, dh[i] + gy[t * BH + b * H + k], dc + r * H, gx + row,
                      dc + r * H, H, k);
      } else {
        for (int q = 0; q < 4; ++q) gx[row + q * H + k] = 0.0f;
      }
    }
    blk.sync();
    // dh = ggates_t @ w_hh for the samples that took part in step t (the others keep theirs)
    for (int64_t i = blk.thread(); i < rows * H; i += blk.threads()) {
      const int64_t r = i / H, k = i - r * H, b = b0 + r;
      if (t >= lengths[b]) continue;
      const float* g = gx + (t * B + b) * G;
      float acc = 0.0f;
      for (int64_t j = 0; j < G; ++j) acc = fmaf(g[j], w[j * H + k], acc);
      dh[i] = acc;
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
