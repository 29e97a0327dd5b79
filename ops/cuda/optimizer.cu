// The optimizers' updates and gradient clipping's passes (twin: ops/cpu/optimizer.cpp). One thread per element,
// grid-stride. Every product and sum is written with an explicit rounding intrinsic (rn::mul: __fmul_rn, ...)
// so nvcc cannot contract a multiply-add into an FMA: each element then sees the CPU's float operations in the
// CPU's order, and the parameters after a step equal the CPU's bit for bit. Memory-bound: a few reads and
// writes per element.
#include <utility>
#include <vector>

#include "engine/cuda_runtime.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/device_block.cuh"
#include "ops/cuda/kernels.h"
#include "ops/cuda/multi_tensor_block.h"

namespace msmix::cuda {
namespace {

using namespace multi_tensor_block;

__global__ void sgd_kernel(float* param, const float* grad, float* momentum_buf, int64_t n, cpu::SGDScalars s) {
  MSMIX_GRID_LOOP(i, n) {
    float g = grad[i];
    if (s.weight_decay != 0) g = rn::add(g, rn::mul(s.weight_decay, param[i]));
    if (momentum_buf) {
      const float buf =
          s.first_step ? g : rn::add(rn::mul(momentum_buf[i], s.momentum), rn::mul(s.one_minus_dampening, g));
      momentum_buf[i] = buf;
      g = s.nesterov ? rn::add(g, rn::mul(s.momentum, buf)) : buf;
    }
    param[i] = rn::sub(param[i], rn::mul(s.lr, g));
  }
}

__global__ void adam_kernel(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                            cpu::AdamScalars s) {
  MSMIX_GRID_LOOP(i, n) adam_element(param, grad, exp_avg, exp_avg_sq, s, i);
}

// ---- Multi-tensor kernels (Adam, clip_grad_norm): bodies and chunk table in ops/cuda/multi_tensor_block.h.

// The entries copied to the device (an upload queued on the stream, no wait).
template <class Entry>
struct DeviceTable {
  explicit DeviceTable(const std::vector<Entry>& e) : buffer((std::max<size_t>(1, e.size()) * sizeof(Entry) + 3) / 4) {
    if (!e.empty()) memcpy_host_to_device(buffer.get(), e.data(), e.size() * sizeof(Entry));
  }
  const Entry* get() const { return reinterpret_cast<const Entry*>(buffer.get()); }
  DeviceBuffer buffer;  // floats
};

__global__ void adam_many_kernel(const AdamEntry* entries, int count, int64_t chunks) {
  adam_many(DeviceBlock{}, entries, count, chunks);
}

__global__ void clamp_kernel(float* g, int64_t n, float lo, float hi) {
  MSMIX_GRID_LOOP(i, n) g[i] = g[i] < lo ? lo : (g[i] > hi ? hi : g[i]);  // NaN passes through
}

// clip_grad_norm's passes (multi_tensor_block.h); the first and last in blocks of kThreads threads.
__global__ void chunk_squares_kernel(const GradEntry* e, int count, int64_t chunks, double* partial) {
  chunk_squares(DeviceBlock{}, e, count, chunks, partial);
}

__global__ void clip_decide_kernel(const double* partial, int64_t chunks, float max_norm, float* decision) {
  clip_decide(DeviceBlock{}, partial, chunks, max_norm, decision);
}

__global__ void clip_scale_kernel(const GradEntry* e, int count, int64_t chunks, const float* decision) {
  clip_scale(DeviceBlock{}, e, count, chunks, decision);
}

// Dynamic shared memory of the passes that sum over a block of kThreads threads.
constexpr size_t kClipSharedBytes = size_t(clip_shared_floats(kThreads)) * sizeof(float);

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
    chunk_squares_kernel<<<blocks, kThreads, kClipSharedBytes>>>(table.get(), int(entries.size()), chunks, part);
    CUDA_CHECK_LAUNCH("chunk_squares_kernel");
  }
  clip_decide_kernel<<<1, kThreads, kClipSharedBytes>>>(part, chunks, max_norm, decision);
  CUDA_CHECK_LAUNCH("clip_decide_kernel");
  if (chunks > 0) {
    clip_scale_kernel<<<blocks, kThreads>>>(table.get(), int(entries.size()), chunks, decision);
    CUDA_CHECK_LAUNCH("clip_scale_kernel");
  }
}

}  // namespace msmix::cuda
