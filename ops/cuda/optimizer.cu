// The optimizers' updates and gradient clipping's passes (twin: ops/cpu/optimizer.cpp). One thread per element,
// grid-stride. Every product and sum is written with an explicit rounding intrinsic (__fmul_rn, __fadd_rn, ...)
// so nvcc cannot contract a multiply-add into an FMA: each element then sees the CPU's float operations in the
// CPU's order, and the parameters after a step equal the CPU's bit for bit. Memory-bound: a few reads and
// writes per element.
#include "engine/cuda_runtime.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/kernels.h"

namespace msmix::cuda {
namespace {

__global__ void sgd_kernel(float* param, const float* grad, float* momentum_buf, int64_t n, cpu::SGDScalars s) {
  MSMIX_GRID_LOOP(i, n) {
    float g = grad[i];
    if (s.weight_decay != 0) g = __fadd_rn(g, __fmul_rn(s.weight_decay, param[i]));
    if (momentum_buf) {
      const float buf = s.first_step ? g
                                     : __fadd_rn(__fmul_rn(momentum_buf[i], s.momentum),
                                                 __fmul_rn(s.one_minus_dampening, g));
      momentum_buf[i] = buf;
      g = s.nesterov ? __fadd_rn(g, __fmul_rn(s.momentum, buf)) : buf;
    }
    param[i] = __fsub_rn(param[i], __fmul_rn(s.lr, g));
  }
}

// Element i of one tensor's Adam update.
__device__ __forceinline__ void adam_element(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                                             const cpu::AdamScalars& s, int64_t i) {
  const float p = __fmul_rn(param[i], s.param_scale);
  float g = grad[i];
  if (s.l2_weight_decay != 0) g = __fadd_rn(g, __fmul_rn(s.l2_weight_decay, p));
  const float m = __fadd_rn(__fmul_rn(exp_avg[i], s.beta1), __fmul_rn(s.one_minus_beta1, g));
  const float v = __fadd_rn(__fmul_rn(exp_avg_sq[i], s.beta2), __fmul_rn(__fmul_rn(s.one_minus_beta2, g), g));
  exp_avg[i] = m;
  exp_avg_sq[i] = v;
  const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), s.bias_correction2_sqrt), s.eps);
  param[i] = __fsub_rn(p, __fdiv_rn(__fmul_rn(s.step_size, m), denom));
}

__global__ void adam_kernel(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                            cpu::AdamScalars s) {
  MSMIX_GRID_LOOP(i, n) adam_element(param, grad, exp_avg, exp_avg_sq, s, i);
}

// The multi-tensor update: the tensors cut into chunks of kAdamChunk elements, numbered across the list
// (first_chunk: a tensor's first chunk number); block x takes chunks x, x + grid, ... and finds each one's
// tensor by binary search over first_chunk.
constexpr int64_t kAdamChunk = 8192;
struct AdamEntry {
  cpu::AdamTensor t;
  int64_t first_chunk;
};

__global__ void adam_many_kernel(const AdamEntry* entries, int count, int64_t chunks) {
  for (int64_t c = blockIdx.x; c < chunks; c += gridDim.x) {
    int lo = 0, hi = count - 1;  // the last entry with first_chunk <= c
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (entries[mid].first_chunk <= c) lo = mid;
      else hi = mid - 1;
    }
    const cpu::AdamTensor& t = entries[lo].t;
    const int64_t begin = (c - entries[lo].first_chunk) * kAdamChunk;
    const int64_t end = begin + kAdamChunk < t.n ? begin + kAdamChunk : t.n;
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x)
      adam_element(t.param, t.grad, t.exp_avg, t.exp_avg_sq, t.s, i);
  }
}

__global__ void clamp_kernel(float* g, int64_t n, float lo, float hi) {
  MSMIX_GRID_LOOP(i, n) g[i] = g[i] < lo ? lo : (g[i] > hi ? hi : g[i]);  // NaN passes through
}

__global__ void scale_kernel(float* g, int64_t n, float coef) {
  MSMIX_GRID_LOOP(i, n) g[i] = __fmul_rn(g[i], coef);
}

// Pass 1: each block sums the squares of its grid-stride share in double into partial[blockIdx.x].
// Pass 2: one block sums the partials. A fixed grid and fixed orders: the same value on every run.
constexpr int kSquareBlocks = 256;

__global__ void square_partials_kernel(const float* g, int64_t n, double* partial) {
  __shared__ double scratch[kThreads / 32];
  double s = 0;
  MSMIX_GRID_LOOP(i, n) s += double(g[i]) * double(g[i]);
  s = group_reduce<kThreads>(s, SumOp{}, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void sum_partials_kernel(const double* partial, int count, double* out) {
  __shared__ double scratch[kThreads / 32];
  double s = 0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) s += partial[i];
  s = group_reduce<kThreads>(s, SumOp{}, scratch);
  if (threadIdx.x == 0) *out = s;
}

}  // namespace

void sgd_update(float* param, const float* grad, float* momentum_buf, int64_t n, const cpu::SGDScalars& s) {
  if (n == 0) return;
  sgd_kernel<<<blocks_for(n), kThreads>>>(param, grad, momentum_buf, n, s);
  CUDA_CHECK_LAUNCH("sgd_kernel");
}

void adam_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                 const cpu::AdamScalars& s) {
  if (n == 0) return;
  adam_kernel<<<blocks_for(n), kThreads>>>(param, grad, exp_avg, exp_avg_sq, n, s);
  CUDA_CHECK_LAUNCH("adam_kernel");
}

void adam_update_many(const std::vector<cpu::AdamTensor>& tensors) {
  std::vector<AdamEntry> entries;
  int64_t chunks = 0;
  for (const cpu::AdamTensor& t : tensors) {
    if (t.n == 0) continue;
    entries.push_back({t, chunks});
    chunks += (t.n + kAdamChunk - 1) / kAdamChunk;
  }
  if (entries.empty()) return;
  const size_t bytes = entries.size() * sizeof(AdamEntry);
  DeviceBuffer table((bytes + sizeof(float) - 1) / sizeof(float));
  memcpy_host_to_device(table.get(), entries.data(), bytes);  // queued: no wait for the stream
  const unsigned blocks = unsigned(std::min<int64_t>(chunks, kMaxBlocks));
  adam_many_kernel<<<blocks, kThreads>>>(reinterpret_cast<const AdamEntry*>(table.get()), int(entries.size()),
                                         chunks);
  CUDA_CHECK_LAUNCH("adam_many_kernel");
}

void clamp_inplace(float* g, int64_t n, float lo, float hi) {
  if (n == 0) return;
  clamp_kernel<<<blocks_for(n), kThreads>>>(g, n, lo, hi);
  CUDA_CHECK_LAUNCH("clamp_kernel");
}

void scale_inplace(float* g, int64_t n, float coef) {
  if (n == 0) return;
  scale_kernel<<<blocks_for(n), kThreads>>>(g, n, coef);
  CUDA_CHECK_LAUNCH("scale_kernel");
}

double sum_of_squares(const float* g, int64_t n) {
  if (n == 0) return 0;
  DeviceBuffer scratch(2 * (kSquareBlocks + 1));  // floats: room for kSquareBlocks + 1 doubles
  double* partial = reinterpret_cast<double*>(scratch.get());
  const int grid = int(std::min<int64_t>(blocks_for(n), kSquareBlocks));
  square_partials_kernel<<<grid, kThreads>>>(g, n, partial);
  CUDA_CHECK_LAUNCH("square_partials_kernel");
  sum_partials_kernel<<<1, kThreads>>>(partial, grid, partial + kSquareBlocks);
  CUDA_CHECK_LAUNCH("sum_partials_kernel");
  double out = 0;
  memcpy_device_to_host(&out, partial + kSquareBlocks, sizeof(double));
  return out;
}

}  // namespace msmix::cuda
