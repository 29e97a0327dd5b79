#include "ops/cpu/lstm_cell.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "ops/cpu/fast_math.h"

namespace msmix::cpu {
namespace {

constexpr int64_t kParallelMin = 1 << 14;  // elements of [B, H] below which threads cost more than they save

// The cell works on 4 lanes at a time with the vectorised exp of fast_math.h (the transcendentals, 5 per
// element, dominate a step when H is small). A row's tail of fewer than 4 goes through the same lane code on
// zero-padded copies, so every element is computed by the same formula wherever it sits.
inline Vec4 load(const float* p) {
  Vec4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, Vec4 v) { std::memcpy(p, &v, sizeof v); }
inline Vec4 sigmoid4(Vec4 x) { return 1.0f / (1.0f + fast_exp4(-x)); }
// tanh(x) = 2 sigmoid(2x) - 1: exact limits +-1, absolute error a few 1e-7 (relative error grows near 0,
// where the cell multiplies it by O(1) factors anyway).
inline Vec4 tanh4(Vec4 x) { return 2.0f / (1.0f + fast_exp4(-2.0f * x)) - 1.0f; }

// Four lanes of the forward: gates (i, f, g, o) at stride H, c_prev -> acts (same layout as gates), h, c.
inline void cell_forward4(const float* gates, const float* cp, float* acts, float* h, float* c, int64_t H) {
  Vec4 i = sigmoid4(load(gates)), f = sigmoid4(load(gates + H));
  Vec4 g = tanh4(load(gates + 2 * H)), o = sigmoid4(load(gates + 3 * H));
  Vec4 cn = f * load(cp) + i * g;
  store(acts, i), store(acts + H, f), store(acts + 2 * H, g), store(acts + 3 * H, o);
  store(c, cn);
  store(h, o * tanh4(cn));
}

// Four lanes of the backward: dc_total = gc + gh * o * (1 - tanh(c)^2), then each gate's grad times its
// activation's derivative.
inline void cell_backward4(const float* acts, const float* cp, const float* gh, const float* gc, float* ggates,
                           float* gcp, int64_t H) {
  Vec4 i = load(acts), f = load(acts + H), g = load(acts + 2 * H), o = load(acts + 3 * H);
  Vec4 cpv = load(cp), ghv = load(gh);
  Vec4 tc = tanh4(f * cpv + i * g);
  Vec4 dc = load(gc) + ghv * o * (1.0f - tc * tc);
  store(ggates, dc * g * i * (1.0f - i));
  store(ggates + H, dc * cpv * f * (1.0f - f));
  store(ggates + 2 * H, dc * i * (1.0f - g * g));
  store(ggates + 3 * H, ghv * tc * o * (1.0f - o));
  store(gcp, dc * f);
}

// Copies the last n < 4 lanes of each of `count` strided vectors into zero-padded 4-lane slots and back.
inline void pad_in(const float* src, int64_t stride, int count, int64_t n, float* dst) {
  for (int k = 0; k < count; ++k)
    for (int64_t j = 0; j < 4; ++j) dst[4 * k + j] = j < n ? src[k * stride + j] : 0.0f;
}
inline void pad_out(const float* src, int count, int64_t n, float* dst, int64_t stride) {
  for (int k = 0; k < count; ++k)
    for (int64_t j = 0; j < n; ++j) dst[k * stride + j] = src[4 * k + j];
}

// One sample: gates [4H] (pre-activation) and c_prev [H] -> acts [4H], h [H], c [H]. acts may alias gates.
void cell_forward_row(const float* gates, const float* cp, float* acts, float* h, float* c, int64_t H) {
  int64_t j = 0;
  for (; j + 4 <= H; j += 4) cell_forward4(gates + j, cp + j, acts + j, h + j, c + j, H);
  if (int64_t n = H - j; n > 0) {
    float g4[16], cp4[4], a4[16], h4[4], c4[4];
    pad_in(gates + j, H, 4, n, g4);
    pad_in(cp + j, 0, 1, n, cp4);
    cell_forward4(g4, cp4, a4, h4, c4, 4);
    pad_out(a4, 4, n, acts + j, H);
    pad_out(h4, 1, n, h + j, 0);
    pad_out(c4, 1, n, c + j, 0);
  }
}

// One sample: grads gh, gc [H] of h and c -> ggates [4H] (pre-activation), gc_prev [H]. gc_prev may alias gc.
void cell_backward_row(const float* acts, const float* cp, const float* gh, const float* gc, float* ggates,
                       float* gcp, int64_t H) {
  int64_t j = 0;
  for (; j + 4 <= H; j += 4) cell_backward4(acts + j, cp + j, gh + j, gc + j, ggates + j, gcp + j, H);
  if (int64_t n = H - j; n > 0) {
    float a4[16], cp4[4], gh4[4], gc4[4], gg4[16], gcp4[4];
    pad_in(acts + j, H, 4, n, a4);
    pad_in(cp + j, 0, 1, n, cp4);
    pad_in(gh + j, 0, 1, n, gh4);
    pad_in(gc + j, 0, 1, n, gc4);
    cell_backward4(a4, cp4, gh4, gc4, gg4, gcp4, 4);
    pad_out(gg4, 4, n, ggates + j, H);
    pad_out(gcp4, 1, n, gcp + j, 0);
  }
}

}  // namespace

void lstm_cell_forward(const float* gates, const float* c_prev, float* acts, float* h, float* c, int64_t B,
                       int64_t H) {
#pragma omp parallel for if (B * H > kParallelMin)
  for (int64_t b = 0; b < B; ++b)
    cell_forward_row(gates + b * 4 * H, c_prev + b * H, acts + b * 4 * H, h + b * H, c + b * H, H);
}

void lstm_cell_backward(const float* acts, const float* c_prev, const float* gh, const float* gc, float* ggates,
                        float* gc_prev, int64_t B, int64_t H) {
#pragma omp parallel for if (B * H > kParallelMin)
  for (int64_t b = 0; b < B; ++b)
    cell_backward_row(acts + b * 4 * H, c_prev + b * H, gh + b * H, gc + b * H, ggates + b * 4 * H, gc_prev + b * H, H);
}

void lstm_scan_forward(const LstmScan& s, const float* xgates, const float* h0, const float* c0, float* y) {
  const int64_t T = s.T, B = s.B, H = s.H, G = 4 * H, BH = B * H;
  float* h = y + T * BH;  // the running state lives in y's h_n and c_n rows
  float* c = h + BH;
  if (h0) std::copy(h0, h0 + BH, h);
  else std::fill(h, h + BH, 0.0f);
  if (c0) std::copy(c0, c0 + BH, c);
  else std::fill(c, c + BH, 0.0f);

  for (int64_t step = 0; step < T; ++step) {
    int64_t t = s.reverse ? T - 1 - step : step;
    float *hp = s.h_prev + t * BH, *cp = s.c_prev + t * BH, *a = s.acts + t * B * G, *yt = y + t * BH;
    std::copy(h, h + BH, hp);
    std::copy(c, c + BH, cp);
    std::copy(xgates + t * B * G, xgates + (t + 1) * B * G, a);
    // a [B, 4H] += h_prev [B, H] @ w_hh^T
    if (BH > 0) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(B), int(G), int(H), 1.0f, hp, int(H), s.w_hh,
                            int(H), 1.0f, a, int(G));
#pragma omp parallel for if (BH > kParallelMin)
    for (int64_t b = 0; b < B; ++b) {
      if (t < s.lengths[b]) {
        cell_forward_row(a + b * G, cp + b * H, a + b * G, h + b * H, c + b * H, H);
        std::copy(h + b * H, h + (b + 1) * H, yt + b * H);
      } else {  // past this sample's length: state unchanged, output 0
        std::fill(yt + b * H, yt + (b + 1) * H, 0.0f);
      }
    }
  }
}

void lstm_scan_backward(const LstmScan& s, const float* gy, float* gxgates, float* gw_hh, float* gh0, float* gc0) {
  const int64_t T = s.T, B = s.B, H = s.H, G = 4 * H, BH = B * H;
  // dh, dc: grads of the state entering the step being undone; start from the grads of h_n and c_n.
  std::vector<float> dh(gy + T * BH, gy + (T + 1) * BH), dc(gy + (T + 1) * BH, gy + (T + 2) * BH);
  std::vector<float> tmp(static_cast<size_t>(BH));
  for (int64_t step = T - 1; step >= 0; --step) {
    int64_t t = s.reverse ? T - 1 - step : step;
    const float *a = s.acts + t * B * G, *cp = s.c_prev + t * BH, *gyt = gy + t * BH;
    float* gx = gxgates + t * B * G;
#pragma omp parallel for if (BH > kParallelMin)
    for (int64_t b = 0; b < B; ++b) {
      if (t < s.lengths[b]) {
        float* gh = tmp.data() + b * H;  // grad of h_t: through the recurrence and through the output y_t
        for (int64_t j = 0; j < H; ++j) gh[j] = dh[b * H + j] + gyt[b * H + j];
        cell_backward_row(a + b * G, cp + b * H, gh, dc.data() + b * H, gx + b * G, dc.data() + b * H, H);
      } else {  // the step passed the state through: dh and dc unchanged, no grad for its gates
        std::fill(gx + b * G, gx + (b + 1) * G, 0.0f);
      }
    }
    // grad of h_prev = ggates [B, 4H] @ w_hh [4H, H], for the samples that took part in the step
    if (BH > 0) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(B), int(H), int(G), 1.0f, gx, int(G),
                            s.w_hh, int(H), 0.0f, tmp.data(), int(H));
    for (int64_t b = 0; b < B; ++b)
      if (t < s.lengths[b]) std::copy(tmp.begin() + b * H, tmp.begin() + (b + 1) * H, dh.begin() + b * H);
  }
  if (gh0) std::copy(dh.begin(), dh.end(), gh0);
  if (gc0) std::copy(dc.begin(), dc.end(), gc0);
  // grad of w_hh = sum over steps of ggates_t^T @ h_prev_t: one GEMM over all T * B rows, [4H, TB] @ [TB, H]
  if (gw_hh) {
    if (T * BH > 0)
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(G), int(H), int(T * B), 1.0f, gxgates, int(G),
                  s.h_prev, int(H), 0.0f, gw_hh, int(H));
    else
      std::fill(gw_hh, gw_hh + G * H, 0.0f);
  }
}

}  // namespace msmix::cpu
