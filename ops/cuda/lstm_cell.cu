// The fused LSTM ops (twin: ops/cpu/lstm_cell.cpp). Gate order i, f, g, o along 4H; the CPU's formulas
// (sigmoid = 1 / (1 + exp(-x)), tanh = 2 sigmoid(2x) - 1) with expf. lstm_cell: one thread per (b, j) element
// of [B, H], which reads its four gates and writes acts, h, c (backward: the four gate grads and gc_prev).
// lstm_scan: the host walks the T steps; each step is one cuBLAS GEMM (gates += h_prev @ w_hh^T, or
// dh = ggates @ w_hh backward) and one cell kernel that also applies the per-sample lengths (a sample past its
// length keeps its state, outputs 0 and gets no gate grad); w_hh's grad is one GEMM over all T * B rows at
// the end. Bound: launches for small B * H (2-3 per step), the GEMMs for large.
#include <vector>

#include "engine/cuda_runtime.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/kernels.h"

namespace msmix::cuda {
namespace {

__device__ float sigmoid_of(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ float tanh_of(float x) { return 2.0f / (1.0f + expf(-2.0f * x)) - 1.0f; }

// gates / acts rows of 4H (acts may alias gates), c_prev, h, c rows of H.
__device__ void cell_forward(const float* gates, const float* cp, float* acts, float* h, float* c, int64_t H,
                             int64_t j) {
  const float i = sigmoid_of(gates[j]), f = sigmoid_of(gates[H + j]);
  const float g = tanh_of(gates[2 * H + j]), o = sigmoid_of(gates[3 * H + j]);
  const float cn = f * cp[j] + i * g;
  acts[j] = i, acts[H + j] = f, acts[2 * H + j] = g, acts[3 * H + j] = o;
  c[j] = cn;
  h[j] = o * tanh_of(cn);
}

// gc_prev may alias gc (each element is read before it is written, by the same thread).
__device__ void cell_backward(const float* acts, const float* cp, float gh, const float* gc, float* ggates,
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

__global__ void cell_forward_kernel(const float* gates, const float* c_prev, float* acts, float* h, float* c,
                                    int64_t H, int64_t n) {
  MSMIX_GRID_LOOP(i, n) {
    const int64_t b = i / H, j = i - b * H;
    cell_forward(gates + b * 4 * H, c_prev + b * H, acts + b * 4 * H, h + b * H, c + b * H, H, j);
  }
}

__global__ void cell_backward_kernel(const float* acts, const float* c_prev, const float* gh, const float* gc,
                                     float* ggates, float* gc_prev, int64_t H, int64_t n) {
  MSMIX_GRID_LOOP(i, n) {
    const int64_t b = i / H, j = i - b * H;
    cell_backward(acts + b * 4 * H, c_prev + b * H, gh[i], gc + b * H, ggates + b * 4 * H, gc_prev + b * H, H, j);
  }
}

// One scan step t: a [B, 4H] holds xgates + h_prev @ w_hh^T and becomes the acts; h, c [B, H] the running state.
__global__ void scan_forward_kernel(float* a, const float* cp, float* h, float* c, float* yt, const int64_t* lengths,
                                    int64_t t, int64_t H, int64_t n) {
  MSMIX_GRID_LOOP(i, n) {
    const int64_t b = i / H, j = i - b * H;
    if (t < lengths[b]) {
      cell_forward(a + b * 4 * H, cp + b * H, a + b * 4 * H, h + b * H, c + b * H, H, j);
      yt[i] = h[i];
    } else {
      yt[i] = 0.0f;
    }
  }
}

// Undoes step t: dh, dc [B, H] are the grads of the state leaving it; dc becomes the grad of c_prev.
__global__ void scan_backward_kernel(const float* a, const float* cp, const float* gyt, const float* dh, float* dc,
                                     float* gx, const int64_t* lengths, int64_t t, int64_t H, int64_t n) {
  MSMIX_GRID_LOOP(i, n) {
    const int64_t b = i / H, j = i - b * H;
    if (t < lengths[b]) {
      cell_backward(a + b * 4 * H, cp + b * H, dh[i] + gyt[i], dc + b * H, gx + b * 4 * H, dc + b * H, H, j);
    } else {
      for (int k = 0; k < 4; ++k) gx[b * 4 * H + k * H + j] = 0.0f;
    }
  }
}

// dh[b] = tmp[b] for the samples that took part in step t.
__global__ void copy_active_kernel(const float* tmp, float* dh, const int64_t* lengths, int64_t t, int64_t H,
                                   int64_t n) {
  MSMIX_GRID_LOOP(i, n) {
    if (t < lengths[i / H]) dh[i] = tmp[i];
  }
}

// The scan's lengths on the device, for the kernels' per-sample checks.
class DeviceLengths {
 public:
  DeviceLengths(const int64_t* lengths, int64_t B) : buf_(size_t(2 * B)) {
    if (B > 0) memcpy_host_to_device(buf_.get(), lengths, size_t(B) * sizeof(int64_t));
  }
  const int64_t* get() const { return reinterpret_cast<const int64_t*>(buf_.get()); }

 private:
  DeviceBuffer buf_;
};

void copy_or_zero(float* dst, const float* src, int64_t n) {
  if (n == 0) return;
  if (src) memcpy_device_to_device(dst, src, size_t(n) * sizeof(float));
  else memset_zero(dst, size_t(n) * sizeof(float));
}

}  // namespace

void lstm_cell_forward(const float* gates, const float* c_prev, float* acts, float* h, float* c, int64_t B,
                       int64_t H) {
  const int64_t n = B * H;
  if (n == 0) return;
  cell_forward_kernel<<<blocks_for(n), kThreads>>>(gates, c_prev, acts, h, c, H, n);
  CUDA_CHECK_LAUNCH("lstm cell_forward_kernel");
}

void lstm_cell_backward(const float* acts, const float* c_prev, const float* gh, const float* gc, float* ggates,
                        float* gc_prev, int64_t B, int64_t H) {
  const int64_t n = B * H;
  if (n == 0) return;
  cell_backward_kernel<<<blocks_for(n), kThreads>>>(acts, c_prev, gh, gc, ggates, gc_prev, H, n);
  CUDA_CHECK_LAUNCH("lstm cell_backward_kernel");
}

void lstm_scan_forward(const cpu::LstmScan& s, const float* xgates, const float* h0, const float* c0, float* y) {
  const int64_t T = s.T, B = s.B, H = s.H, G = 4 * H, BH = B * H;
  float* h = y + T * BH;  // the running state lives in y's h_n and c_n rows
  float* c = h + BH;
  copy_or_zero(h, h0, BH);
  copy_or_zero(c, c0, BH);
  if (BH == 0) return;
  const DeviceLengths lengths(s.lengths, B);
  for (int64_t step = 0; step < T; ++step) {
    const int64_t t = s.reverse ? T - 1 - step : step;
    float *hp = s.h_prev + t * BH, *cp = s.c_prev + t * BH, *a = s.acts + t * B * G, *yt = y + t * BH;
    memcpy_device_to_device(hp, h, size_t(BH) * sizeof(float));
    memcpy_device_to_device(cp, c, size_t(BH) * sizeof(float));
    memcpy_device_to_device(a, xgates + t * B * G, size_t(B * G) * sizeof(float));
    cpu::GemmBatch gemm;  // a [B, 4H] += h_prev [B, H] @ w_hh^T
    gemm.a = hp, gemm.b = s.w_hh, gemm.c = a;
    gemm.M = B, gemm.N = G, gemm.K = H, gemm.trans_b = true, gemm.accumulate = true;
    cuda::gemm_batched(gemm);
    scan_forward_kernel<<<blocks_for(BH), kThreads>>>(a, cp, h, c, yt, lengths.get(), t, H, BH);
    CUDA_CHECK_LAUNCH("lstm scan_forward_kernel");
  }
}

void lstm_scan_backward(const cpu::LstmScan& s, const float* gy, float* gxgates, float* gw_hh, float* gh0,
                        float* gc0) {
  const int64_t T = s.T, B = s.B, H = s.H, G = 4 * H, BH = B * H;
  // dh, dc: grads of the state entering the step being undone; start from the grads of h_n and c_n.
  DeviceBuffer dh{size_t(BH)}, dc{size_t(BH)}, tmp{size_t(BH)};
  copy_or_zero(dh.get(), gy + T * BH, BH);
  copy_or_zero(dc.get(), gy + (T + 1) * BH, BH);
  if (BH > 0) {
    const DeviceLengths lengths(s.lengths, B);
    for (int64_t step = T - 1; step >= 0; --step) {
      const int64_t t = s.reverse ? T - 1 - step : step;
      const float *a = s.acts + t * B * G, *cp = s.c_prev + t * BH, *gyt = gy + t * BH;
      float* gx = gxgates + t * B * G;
      scan_backward_kernel<<<blocks_for(BH), kThreads>>>(a, cp, gyt, dh.get(), dc.get(), gx, lengths.get(), t, H,
                                                         BH);
      CUDA_CHECK_LAUNCH("lstm scan_backward_kernel");
      cpu::GemmBatch gemm;  // grad of h_prev = ggates [B, 4H] @ w_hh [4H, H]
      gemm.a = gx, gemm.b = s.w_hh, gemm.c = tmp.get();
      gemm.M = B, gemm.N = H, gemm.K = G;
      cuda::gemm_batched(gemm);
      copy_active_kernel<<<blocks_for(BH), kThreads>>>(tmp.get(), dh.get(), lengths.get(), t, H, BH);
      CUDA_CHECK_LAUNCH("lstm copy_active_kernel");
    }
  } else if (T * B * G > 0) {
    memset_zero(gxgates, size_t(T * B * G) * sizeof(float));
  }
  if (gh0 && BH > 0) memcpy_device_to_device(gh0, dh.get(), size_t(BH) * sizeof(float));
  if (gc0 && BH > 0) memcpy_device_to_device(gc0, dc.get(), size_t(BH) * sizeof(float));
  // grad of w_hh = sum over steps of ggates_t^T @ h_prev_t: one GEMM over all T * B rows, [4H, TB] @ [TB, H]
  if (gw_hh) {
    if (T * BH > 0) {
      cpu::GemmBatch gemm;
      gemm.a = gxgates, gemm.b = s.h_prev, gemm.c = gw_hh;
      gemm.M = G, gemm.N = H, gemm.K = T * B, gemm.trans_a = true;
      cuda::gemm_batched(gemm);
    } else if (G * H > 0) {
      memset_zero(gw_hh, size_t(G * H) * sizeof(float));
    }
  }
}

}  // namespace msmix::cuda
