// The fused LSTM ops (twin: ops/cpu/lstm_cell.cpp). Gate order i, f, g, o along 4H; the CPU's formulas
// (sigmoid = 1 / (1 + exp(-x)), tanh = 2 sigmoid(2x) - 1) with expf. lstm_cell: one thread per (b, j) element
// of [B, H], which reads its four gates and writes acts, h, c (backward: the four gate grads and gc_prev).
// lstm_scan, two ways (w_hh's grad is one cuBLAS GEMM over all T * B rows at the end in both):
// - stepwise (MSMIX_CUDA_LSTM=stepwise, and for H above kMaxPersistentH): the host walks the T steps; each step
//   is one cuBLAS GEMM (gates += h_prev @ w_hh^T, or dh = ggates @ w_hh backward) and one cell kernel that also applies
//   the per-sample lengths (a sample past its length keeps its state, outputs 0 and gets no gate grad). Bound: launches
//   for small B * H (5 per step forward, 3 backward: 400 for MMSA's 50-step text LSTM), the GEMMs for large.
// - persistent (the default; set_lstm_kernel switches; the bodies are in lstm_scan_block.h, which
//   a CPU test also runs): one kernel walks all T steps, a block owning kScanRows samples, their h and c in
//   shared memory; each step's gate GEMM is done in the block (thread j: gates j and j + 256 of all its
//   samples, 8 loads in flight), then the same cell as above; a __syncthreads between the phases. Backward
//   likewise (the step's gate grads staged in shared memory; dh = ggates @ w_hh, thread (part, k): a part of
//   column k's sums). Each step reads all of w_hh (4H * H floats): the kernels copy as many of its rows into
//   shared memory as the GPU lets a block have (about 80% of MMSA's H 128 on an H100 / H200) and read the rest
//   from L2, whose latency bound the first version (18 us a step). Two launches forward (a transpose of w_hh,
//   the scan), one backward plus the w_hh GEMM. For H up to kMaxPersistentH.
// MSMIX_CUDA_LSTM=cudnn (or cudnn-persistent, its persistent algorithm) sends an LSTM layer's forward direction
// to cuDNN (lstm_cudnn.cu, through lstm_layer); lstm_scan itself then runs the persistent kernels.
#include <algorithm>
#include <vector>

#include "engine/cuda_runtime.h"
#include "engine/env_choice.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/device_block.cuh"
#include "ops/cuda/kernels.h"
#include "ops/cuda/lstm_scan_block.h"

namespace msmix::cuda {
namespace {

using namespace lstm_scan_block;  // the cell and the persistent scan's bodies, shared with a CPU emulation

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

constexpr int kScanThreads = 256;
constexpr int64_t kMaxPersistentH = 256;  // w_hh^T of 1 MiB: L2-resident, and its state fits 48 KiB

// wt [H, G] = w [G, H]^T, so the forward's thread j reads wt[k * G + j] next to its neighbours.
__global__ void transpose_kernel(const float* w, float* wt, int64_t G, int64_t H) {
  MSMIX_GRID_LOOP(i, G * H) {
    const int64_t j = i / H, k = i - j * H;
    wt[k * G + j] = w[i];
  }
}

__global__ void scan_forward_persistent_kernel(const float* xgates, const float* wt, const float* h0, const float* c0,
                                               float* y, float* acts, float* h_prev, float* c_prev,
                                               const int64_t* lengths, int64_t T, int64_t B, int64_t H, bool reverse,
                                               int64_t cached) {
  scan_forward_persistent(DeviceBlock{}, xgates, wt, h0, c0, y, acts, h_prev, c_prev, lengths, T, B, H, reverse,
                          cached);
}

__global__ void scan_backward_persistent_kernel(const float* gy, const float* w, const float* acts,
                                                const float* c_prev, float* gx, float* gh0, float* gc0,
                                                const int64_t* lengths, int64_t T, int64_t B, int64_t H,
                                                bool reverse, int64_t cached) {
  scan_backward_persistent(DeviceBlock{}, gy, w, acts, c_prev, gx, gh0, gc0, lengths, T, B, H, reverse, cached);
}

bool use_persistent(const cpu::LstmScan& s) {
  return lstm_kernel() != LstmKernel::stepwise && s.T > 0 && s.B > 0 && s.H > 0 && s.H <= kMaxPersistentH;
}
unsigned scan_blocks(int64_t B) { return unsigned((B + kScanRows - 1) / kScanRows); }
static_assert(scan_backward_state_floats(kMaxPersistentH, kScanThreads) * sizeof(float) <= 48 * 1024 &&
                  scan_forward_state_floats(kMaxPersistentH) * sizeof(float) <= 48 * 1024,
              "the persistent scans' state fits the 48 KiB a launch gets without opting in");

// Shared memory (in floats) a persistent scan block may take, state and w_hh cache together: what the GPU
// allows one block (both kernels opted in to it, once), shared among the blocks an SM must hold at once when
// there are more blocks than SMs (each walks all T steps: a second wave would double the time).
int64_t scan_shared_budget(int64_t blocks) {
  struct Limits {
    int64_t per_block = 0, per_sm = 0, sms = 1;
  };
  static const Limits limits = [] {
    int device = 0, per_block = 0, per_sm = 0, sms = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    CUDA_CHECK(cudaDeviceGetAttribute(&per_block, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    CUDA_CHECK(cudaDeviceGetAttribute(&per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device));
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    // Opting in above 48 KiB: a GPU or driver that refuses keeps the default 48 KiB (a smaller cache).
    const auto opt_in = [per_block](const void* kernel) {
      return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, per_block) == cudaSuccess;
    };
    if (!opt_in(reinterpret_cast<const void*>(scan_forward_persistent_kernel)) ||
        !opt_in(reinterpret_cast<const void*>(scan_backward_persistent_kernel))) {
      cudaGetLastError();  // the refusal is not an error of the next launch
      per_block = std::min(per_block, 48 * 1024);
    }
    return Limits{per_block, per_sm, std::max(sms, 1)};
  }();
  const int64_t resident = (blocks + limits.sms - 1) / limits.sms;
  const int64_t bytes = std::min(limits.per_block, limits.per_sm / resident - 1024);  // 1 KiB a block: the system's
  return std::max<int64_t>(bytes, 0) / int64_t(sizeof(float));
}

int g_lstm_kernel = -1;  // an LstmKernel; -1: not yet read from the environment

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

LstmKernel lstm_kernel() {
  if (g_lstm_kernel < 0) {  // persistent: the default since the H200 gpucheck of 2026-11-27 (1.5x on LF_DNN's step)
    const int k = env_choice("MSMIX_CUDA_LSTM", {"persistent", "stepwise", "cudnn", "cudnn-persistent"});
    set_lstm_kernel(LstmKernel(k));
  }
  return LstmKernel(g_lstm_kernel);
}
void set_lstm_kernel(LstmKernel kernel) {
  if (is_cudnn(kernel))
    require_cudnn(fmt::format("MSMIX_CUDA_LSTM={}", lstm_kernel_name(kernel)), "persistent or stepwise");
  g_lstm_kernel = int(kernel);
}
const char* lstm_kernel_name(LstmKernel kernel) {
  switch (kernel) {
    case LstmKernel::persistent: return "persistent";
    case LstmKernel::stepwise: return "stepwise";
    case LstmKernel::cudnn: return "cudnn";
    case LstmKernel::cudnn_persistent: return "cudnn-persistent";
  }
  return "?";
}

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
    const int64_t cached = cached_rows(H, G, scan_forward_state_floats(H), scan_shared_budget(scan_blocks(B)));
    const size_t shared = size_t(scan_forward_shared_floats(H, cached)) * sizeof(float);
    scan_forward_persistent_kernel<<<scan_blocks(B), kScanThreads, shared>>>(
        xgates, wt.get(), h0, c0, y, s.acts, s.h_prev, s.c_prev, lengths.get(), T, B, H, s.reverse, cached);
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
    const int64_t cached =
        cached_rows(G, H, scan_backward_state_floats(H, kScanThreads), scan_shared_budget(scan_blocks(B)));
    const size_t shared = size_t(scan_backward_shared_floats(H, kScanThreads, cached)) * sizeof(float);
    scan_backward_persistent_kernel<<<scan_blocks(B), kScanThreads, shared>>>(
        gy, s.w_hh, s.acts, s.c_prev, gxgates, gh0, gc0, lengths.get(), T, B, H, s.reverse, cached);
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
