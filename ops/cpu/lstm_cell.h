// CPU kernels of the fused LSTM ops (ops/lstm_cell.h). Gate order i, f, g, o along the 4H axis.
// "acts" is the activated gates [B, 4H] (sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)): the forward saves them,
// and the backward needs only them and c_prev (c and tanh(c) are recomputed, cheaper than storing them).
#pragma once
#include <cstdint>

namespace msmix::cpu {

// gates [B, 4H], c_prev [B, H] -> acts [B, 4H], h [B, H], c [B, H].
void lstm_cell_forward(const float* gates, const float* c_prev, float* acts, float* h, float* c, int64_t B,
                       int64_t H);
// From grads gh, gc [B, H] of h and c: ggates [B, 4H] (pre-activation) and gc_prev [B, H].
void lstm_cell_backward(const float* acts, const float* c_prev, const float* gh, const float* gc, float* ggates,
                        float* gc_prev, int64_t B, int64_t H);

// The recurrence of lstm_scan. Shapes: xgates [T, B, 4H], w_hh [4H, H], h0 / c0 [B, H], lengths [B] in [0, T],
// y [T + 2, B, H] (outputs, h_n, c_n). Saved for backward, indexed by time step t: acts [T, B, 4H] and the
// state entering step t, h_prev / c_prev [T, B, H].
struct LstmScan {
  int64_t T = 0, B = 0, H = 0;
  bool reverse = false;
  const int64_t* lengths = nullptr;
  const float* w_hh = nullptr;
  float* acts = nullptr;
  float* h_prev = nullptr;
  float* c_prev = nullptr;
};
void lstm_scan_forward(const LstmScan& s, const float* xgates, const float* h0, const float* c0, float* y);
// gy [T + 2, B, H] -> gxgates [T, B, 4H] (always), gw_hh [4H, H] (overwritten; skipped when null), gh0, gc0 [B, H].
void lstm_scan_backward(const LstmScan& s, const float* gy, float* gxgates, float* gw_hh, float* gh0, float* gc0);

}  // namespace msmix::cpu
