// The fused LSTM ops (twin: ops/cpu/lstm_cell.cpp). Gate order i, f, g, o along 4H; the CPU's formulas
// (sigmoid = 1 / (1 + exp(-x)), tanh = 2 sigmoid(2x) - 1) with expf. lstm_cell: one thread per (b, j) element
// of [B, H], which reads its four gates and writes acts, h, c (backward: the four gate grads and gc_prev).
// lstm_scan, two ways (w_hh's grad is one cuBLAS GEMM over all T * B rows at the end in both):
// - stepwise (the default): the host walks the T steps; each step is one cuBLAS GEMM (gates += h_prev @ w_hh^T,
//   or dh = ggates @ w_hh backward) and one cell kernel that also applies the per-sample lengths (a sample past
//   its length keeps its state, outputs 0 and gets no gate grad). Bound: launches for small B * H (5 per step
//   forward, 3 backward: 400 for MMSA's 50-step text LSTM), the GEMMs for large.
// - persistent (MSMIX_CUDA_LSTM=persistent, or set_persistent_lstm): one kernel walks all T steps, a block
//   owning kScanRows samples, their h and c in shared memory; each step's gate GEMM is done in the block
//   (thread j: gate j of each of its samples, w_hh^T read coalesced from L2), then the same cell as above;
//   a __syncthreads between the phases. Backward likewise (dh = ggates @ w_hh, thread k: column k). Two
//   launches forward (a transpose of w_hh, the scan), one backward plus the w_hh GEMM. For H up to
//   kMaxPersistentH; bound by L2 reads of w_hh (4H * H floats per block per step).
#include <cstdlib>
#include <cstring>
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

// ---- the persistent scan

constexpr int kScanRows = 4;             // samples per block
constexpr int kScanThreads = 256;
constexpr int64_t kMaxPersistentH = 256;  // w_hh^T of 1 MiB: still L2-resident on the GPUs we target

// wt [H, G] = w [G, H]^T, so the forward's thread j reads wt[k * G + j] next to its neighbours.
__global__ void transpose_kernel(const float* w, float* wt, int64_t G, int64_t H) {
  MSMIX_GRID_LOOP(i, G * H) {
    const int64_t j = i / H, k = i - j * H;
    wt[k * G + j] = w[i];
  }
}

// Block x owns samples b0 = x * kScanRows .. b0 + rows - 1 (the last block may own fewer).
__device__ int rows_of_block(int64_t B) {
  const int64_t left = B - int64_t(blockIdx.x) * kScanRows;
  return left < kScanRows ? int(left) : kScanRows;
}

// Shared: h, c [kScanRows, H]. acts doubles as the gate buffer.
__global__ void scan_forward_persistent_kernel(const float* xgates, const float* wt, const float* h0, const float* c0,
                                               float* y, float* acts, float* h_prev, float* c_prev,
                                               const int64_t* lengths, int64_t T, int64_t B, int64_t H, bool reverse) {
  extern __shared__ float state[];
  float* hs = state;
  float* cs = state + kScanRows * H;
  const int64_t b0 = int64_t(blockIdx.x) * kScanRows, G = 4 * H, BH = B * H;
  const int rows = rows_of_block(B);
  for (int64_t i = threadIdx.x; i < rows * H; i += blockDim.x) {
    const int64_t at = (b0 + i / H) * H + i % H;
    hs[i] = h0 ? h0[at] : 0.0f;
    cs[i] = c0 ? c0[at] : 0.0f;
  }
  __syncthreads();
  for (int64_t step = 0; step < T; ++step) {
    const int64_t t = reverse ? T - 1 - step : step;
    for (int64_t i = threadIdx.x; i < rows * H; i += blockDim.x) {  // the state entering step t, for backward
      const int64_t at = t * BH + (b0 + i / H) * H + i % H;
      h_prev[at] = hs[i];
      c_prev[at] = cs[i];
    }
    // gates = xgates_t + h @ w_hh^T, row by row of this block's samples
    float* a = acts + (t * B + b0) * G;
    const float* x = xgates + (t * B + b0) * G;
    for (int64_t j = threadIdx.x; j < G; j += blockDim.x) {
      float acc[kScanRows] = {};
      for (int64_t k = 0; k < H; ++k) {
        const float w = wt[k * G + j];
#pragma unroll
        for (int r = 0; r < kScanRows; ++r)
          if (r < rows) acc[r] = fmaf(hs[r * H + k], w, acc[r]);
      }
#pragma unroll
      for (int r = 0; r < kScanRows; ++r)
        if (r < rows) a[r * G + j] = x[r * G + j] + acc[r];
    }
    __syncthreads();
    for (int64_t i = threadIdx.x; i < rows * H; i += blockDim.x) {
      const int64_t r = i / H, k = i - r * H, b = b0 + r;
      float* yt = y + t * BH + b * H;
      if (t < lengths[b]) {
        cell_forward(a + r * G, cs + r * H, a + r * G, hs + r * H, cs + r * H, H, k);
        yt[k] = hs[i];
      } else {
        yt[k] = 0.0f;
      }
    }
    __syncthreads();
  }
  for (int64_t i = threadIdx.x; i < rows * H; i += blockDim.x) {  // h_n, c_n
    const int64_t at = (b0 + i / H) * H + i % H;
    y[T * BH + at] = hs[i];
    y[(T + 1) * BH + at] = cs[i];
  }
}

// Shared: dh, dc [kScanRows, H], the grads of the state leaving the step being undone.
__global__ void scan_backward_persistent_kernel(const float* gy, const float* w, const float* acts,
                                                const float* c_prev, float* gx, float* gh0, float* gc0,
                                                const int64_t* lengths, int64_t T, int64_t B, int64_t H,
                                                bool reverse) {
  extern __shared__ float state[];
  float* dh = state;
  float* dc = state + kScanRows * H;
  const int64_t b0 = int64_t(blockIdx.x) * kScanRows, G = 4 * H, BH = B * H;
  const int rows = rows_of_block(B);
  for (int64_t i = threadIdx.x; i < rows * H; i += blockDim.x) {  // from the grads of h_n and c_n
    const int64_t at = (b0 + i / H) * H + i % H;
    dh[i] = gy[T * BH + at];
    dc[i] = gy[(T + 1) * BH + at];
  }
  __syncthreads();
  for (int64_t step = T - 1; step >= 0; --step) {
    const int64_t t = reverse ? T - 1 - step : step;
    for (int64_t i = threadIdx.x; i < rows * H; i += blockDim.x) {
      const int64_t r = i / H, k = i - r * H, b = b0 + r;
      const int64_t row = (t * B + b) * G;
      if (t < lengths[b]) {
        cell_backward(acts + row, c_prev + t * BH + b * H, dh[i] + gy[t * BH + b * H + k], dc + r * H, gx + row,
                      dc + r * H, H, k);
      } else {
        for (int q = 0; q < 4; ++q) gx[row + q * H + k] = 0.0f;
      }
    }
    __syncthreads();
    // dh = ggates_t @ w_hh for the samples that took part in step t (the others keep theirs)
    for (int64_t i = threadIdx.x; i < rows * H; i += blockDim.x) {
      const int64_t r = i / H, k = i - r * H, b = b0 + r;
      if (t >= lengths[b]) continue;
      const float* g = gx + (t * B + b) * G;
      float acc = 0.0f;
      for (int64_t j = 0; j < G; ++j) acc = fmaf(g[j], w[j * H + k], acc);
      dh[i] = acc;
    }
    __syncthreads();
  }
  for (int64_t i = threadIdx.x; i < rows * H; i += blockDim.x) {
    const int64_t at = (b0 + i / H) * H + i % H;
    if (gh0) gh0[at] = dh[i];
    if (gc0) gc0[at] = dc[i];
  }
}

bool use_persistent(const cpu::LstmScan& s) {
  return persistent_lstm() && s.T > 0 && s.B > 0 && s.H > 0 && s.H <= kMaxPersistentH;
}
unsigned scan_blocks(int64_t B) { return unsigned((B + kScanRows - 1) / kScanRows); }
size_t scan_shared_bytes(int64_t H) { return size_t(2 * kScanRows * H) * sizeof(float); }

int g_persistent = -1;  // -1: not yet read from the environment

void copy_or_zero(float* dst, const float* src, int64_t n) {
  if (n == 0) return;
  if (src) memcpy_device_to_device(dst, src, size_t(n) * sizeof(float));
  else memset_zero(dst, size_t(n) * sizeof(float));
}

// The stepwise backward: per step the cell kernel, one GEMM for the grad of h_prev, and a copy of it into the
// samples that took part in the step.
void scan_backward_stepwise(const cpu::LstmScan& s, const float* gy, float* gxgates, float* gh0, float* gc0) {
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
}

}  // namespace

bool persistent_lstm() {
  if (g_persistent < 0) {
    const char* v = std::getenv("MSMIX_CUDA_LSTM");
    g_persistent = v && std::strcmp(v, "persistent") == 0;
  }
  return g_persistent == 1;
}
void set_persistent_lstm(bool on) { g_persistent = on; }

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
  if (use_persistent(s)) {
    const DeviceLengths lengths(s.lengths, B);
    DeviceBuffer wt{size_t(G * H)};
    transpose_kernel<<<blocks_for(G * H), kThreads>>>(s.w_hh, wt.get(), G, H);
    CUDA_CHECK_LAUNCH("lstm transpose_kernel");
    scan_forward_persistent_kernel<<<scan_blocks(B), kScanThreads, scan_shared_bytes(H)>>>(
        xgates, wt.get(), h0, c0, y, s.acts, s.h_prev, s.c_prev, lengths.get(), T, B, H, s.reverse);
    CUDA_CHECK_LAUNCH("lstm scan_forward_persistent_kernel");
    return;
  }
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
  if (use_persistent(s)) {
    const DeviceLengths lengths(s.lengths, B);
    scan_backward_persistent_kernel<<<scan_blocks(B), kScanThreads, scan_shared_bytes(H)>>>(
        gy, s.w_hh, s.acts, s.c_prev, gxgates, gh0, gc0, lengths.get(), T, B, H, s.reverse);
    CUDA_CHECK_LAUNCH("lstm scan_backward_persistent_kernel");
  } else {
    scan_backward_stepwise(s, gy, gxgates, gh0, gc0);
  }
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
