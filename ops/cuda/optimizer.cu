// The optimizers' updates and gradient clipping's passes (twin: ops/cpu/optimizer.cpp). One thread per element,
// grid-stride. Every product and sum is written with an explicit rounding intrinsic (__fmul_rn, __fadd_rn, ...)
// so nvcc cannot contract a multiply-add into an FMA: each element then sees the CPU's float operations in the
// CPU's order, and the parameters after a step equal the CPU's bit for bit. Memory-bound: a few reads and
// writes per element.
#include <utility>
#include <vector>

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

// ---- Multi-tensor kernels (Adam, clip_grad_norm): the tensors are cut into chunks of kChunk elements, numbered
// across the list (an entry's first_chunk: the number of its first chunk). Block x takes chunks x, x + grid, ...,
// finds each one's entry by binary search over first_chunk, and its threads stride over the chunk's elements.
constexpr int64_t kChunk = 8192;

// The entry holding chunk c (the last with first_chunk <= c) and the chunk's elements [begin, end) in it.
template <class Entry>
__device__ const Entry& chunk_entry(const Entry* e, int count, int64_t c, int64_t& begin, int64_t& end) {
  int lo = 0, hi = count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (e[mid].first_chunk <= c) lo = mid;
    else hi = mid - 1;
  }
  begin = (c - e[lo].first_chunk) * kChunk;
  end = begin + kChunk < e[lo].size() ? begin + kChunk : e[lo].size();
  return e[lo];
}

// Numbers the chunks of `entries` (dropping empty ones); returns how many there are.
template <class Entry>
int64_t number_chunks(std::vector<Entry>& entries) {
  std::vector<Entry> kept;
  int64_t chunks = 0;
  for (Entry e : entries) {
    if (e.size() == 0) continue;
    e.first_chunk = chunks;
    chunks += (e.size() + kChunk - 1) / kChunk;
    kept.push_back(e);
  }
  entries.swap(kept);
  return chunks;
}

// The entries copied to the device (an upload queued on the stream, no wait).
template <class Entry>
struct DeviceTable {
  explicit DeviceTable(const std::vector<Entry>& e) : buffer((std::max<size_t>(1, e.size()) * sizeof(Entry) + 3) / 4) {
    if (!e.empty()) memcpy_host_to_device(buffer.get(), e.data(), e.size() * sizeof(Entry));
  }
  const Entry* get() const { return reinterpret_cast<const Entry*>(buffer.get()); }
  DeviceBuffer buffer;  // floats
};

struct AdamEntry {
  cpu::AdamTensor t;
  int64_t first_chunk;
  __host__ __device__ int64_t size() const { return t.n; }
};

__global__ void adam_many_kernel(const AdamEntry* entries, int count, int64_t chunks) {
  for (int64_t c = blockIdx.x; c < chunks; c += gridDim.x) {
    int64_t begin, end;
    const cpu::AdamTensor& t = chunk_entry(entries, count, c, begin, end).t;
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x)
      adam_element(t.param, t.grad, t.exp_avg, t.exp_avg_sq, t.s, i);
  }
}

__global__ void clamp_kernel(float* g, int64_t n, float lo, float hi) {
  MSMIX_GRID_LOOP(i, n) g[i] = g[i] < lo ? lo : (g[i] > hi ? hi : g[i]);  // NaN passes through
}

// ---- clip_grad_norm over many tensors, three launches and no read back: pass 1 writes each chunk's sum of
// squares in double to partial[c], pass 2 sums the partials in one block and decides norm and coefficient on
// the device, pass 3 scales. Fixed chunks and fixed orders: the same value on every run.
struct GradEntry {
  float* g;
  int64_t n, first_chunk;
  __host__ __device__ int64_t size() const { return n; }
};

__global__ void chunk_squares_kernel(const GradEntry* e, int count, int64_t chunks, double* partial) {
  __shared__ double scratch[kThreads / 32];
  for (int64_t c = blockIdx.x; c < chunks; c += gridDim.x) {
    int64_t begin, end;
    const float* g = chunk_entry(e, count, c, begin, end).g;
    double s = 0;
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) s += double(g[i]) * double(g[i]);
    s = group_reduce<kThreads>(s, SumOp{}, scratch);  // its leading barrier protects scratch across chunks
    if (threadIdx.x == 0) partial[c] = s;
  }
}

// decision[0] = norm, decision[1] = the coefficient, or 1 when nothing is to be scaled (norm within max_norm,
// or not finite: reported, not applied, as the CPU path).
__global__ void clip_decide_kernel(const double* partial, int64_t chunks, float max_norm, float* decision) {
  __shared__ double scratch[kThreads / 32];
  double s = 0;
  for (int64_t i = threadIdx.x; i < chunks; i += blockDim.x) s += partial[i];
  s = group_reduce<kThreads>(s, SumOp{}, scratch);
  if (threadIdx.x == 0) {
    const float norm = float(sqrt(s));
    const float coef = __fdiv_rn(max_norm, __fadd_rn(norm, 1e-6f));  // float, as the CPU
    decision[0] = norm;
    decision[1] = isfinite(norm) && coef < 1.0f ? coef : 1.0f;
  }
}

__global__ void clip_scale_kernel(const GradEntry* e, int count, int64_t chunks, const float* decision) {
  const float coef = decision[1];
  if (coef == 1.0f) return;
  for (int64_t c = blockIdx.x; c < chunks; c += gridDim.x) {
    int64_t begin, end;
    float* g = chunk_entry(e, count, c, begin, end).g;
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) g[i] = __fmul_rn(g[i], coef);
  }
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
  for (const cpu::AdamTensor& t : tensors) entries.push_back({t, 0});
  const int64_t chunks = number_chunks(entries);
  if (chunks == 0) return;
  const DeviceTable<AdamEntry> table(entries);
  adam_many_kernel<<<unsigned(std::min<int64_t>(chunks, kMaxBlocks)), kThreads>>>(table.get(), int(entries.size()),
                                                                                   chunks);
  CUDA_CHECK_LAUNCH("adam_many_kernel");
}

void clamp_inplace(float* g, int64_t n, float lo, float hi) {
  if (n == 0) return;
  clamp_kernel<<<blocks_for(n), kThreads>>>(g, n, lo, hi);
  CUDA_CHECK_LAUNCH("clamp_kernel");
}

void clip_grad_norm_many(const std::vector<std::pair<float*, int64_t>>& grads, float max_norm, float* decision) {
  std::vector<GradEntry> entries;
  for (const auto& [g, n] : grads) entries.push_back({g, n, 0});
  const int64_t chunks = number_chunks(entries);
  const DeviceTable<GradEntry> table(entries);
  DeviceBuffer partial(size_t(2 * std::max<int64_t>(chunks, 1)));  // doubles
  auto* part = reinterpret_cast<double*>(partial.get());
  const unsigned blocks = unsigned(std::max<int64_t>(1, std::min<int64_t>(chunks, kMaxBlocks)));
  if (chunks > 0) {
    chunk_squares_kernel<<<blocks, kThreads>>>(table.get(), int(entries.size()), chunks, part);
    CUDA_CHECK_LAUNCH("chunk_squares_kernel");
  }
  clip_decide_kernel<<<1, kThreads>>>(part, chunks, max_norm, decision);
  CUDA_CHECK_LAUNCH("clip_decide_kernel");
  if (chunks > 0) {
    clip_scale_kernel<<<blocks, kThreads>>>(table.get(), int(entries.size()), chunks, decision);
    CUDA_CHECK_LAUNCH("clip_scale_kernel");
  }
}

}  // namespace msmix::cuda
