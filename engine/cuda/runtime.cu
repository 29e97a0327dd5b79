// The engine's CUDA runtime: device discovery, raw allocation, copies on the engine's one stream (the per-thread
// default stream), the queued-work count, and CUDA graph capture and replay.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#if __has_include(<nvtx3/nvToolsExt.h>)
#include <nvtx3/nvToolsExt.h>  // header-only (NVTX v3): it finds the profiler, if any, at the first call
#define MSMIX_HAVE_NVTX 1
#endif

#include "engine/env_choice.h"
#include "engine/allocator.h"
#include "engine/cuda/check.h"
#include "engine/cuda_runtime.h"
#include "engine/philox.h"
#include "engine/tensor.h"

namespace msmix::cuda {

bool compiled() { return true; }

bool sync_after_launch() {
  static const bool on = env_choice("MSMIX_CUDA_SYNC", {"0", "1"}) == 1;
  return on;
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error: no GPU is not a failure
    return 0;
  }
  return n;
}

std::string device_name(int index) {
  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  return fmt::format("{} (sm_{}{}, {:.1f} GiB)", prop.name, prop.major, prop.minor,
                     prop.totalGlobalMem / double(1 << 30));
}

std::string runtime_info() {
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  std::string drv = driver ? fmt::format("driver {}.{}", driver / 1000, driver % 1000 / 10) : "no driver";
  return fmt::format("runtime {}.{}, {}", runtime / 1000, runtime % 1000 / 10, drv);
}

void* malloc(size_t bytes) {
  void* ptr = nullptr;
  CUDA_CHECK(cudaMalloc(&ptr, bytes));
  return ptr;
}
void free(void* ptr) { CUDA_CHECK(cudaFree(ptr)); }
namespace {

// Small host-to-device copies (index tensors, per-step scalars) go through pinned staging slots: a copy from
// pageable memory first waits for the stream to drain, one from pinned memory just queues. A slot is reused
// once the copy that last used it has finished (its event); big copies (a dataset split, once) go directly.
class StagingSlots {
 public:
  static constexpr size_t kSlots = 64, kSlotBytes = 64 << 10;  // 4 MiB of pinned memory in all

  bool fits(size_t bytes) const { return bytes <= kSlotBytes; }

  void copy(void* dst, const void* src, size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!base_) {
      CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&base_), kSlots * kSlotBytes, cudaHostAllocDefault));
      for (cudaEvent_t& e : done_) CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    }
    const size_t k = next_;
    next_ = (next_ + 1) % kSlots;
    if (used_[k]) CUDA_CHECK(cudaEventSynchronize(done_[k]));  // 64 copies still in flight: rare
    char* slot = base_ + k * kSlotBytes;
    std::memcpy(slot, src, bytes);
    CUDA_CHECK(cudaMemcpyAsync(dst, slot, bytes, cudaMemcpyHostToDevice, 0));
    CUDA_CHECK(cudaEventRecord(done_[k], 0));
    used_[k] = true;
  }

 private:
  std::mutex mutex_;  // the loader's thread may copy too
  char* base_ = nullptr;
  cudaEvent_t done_[kSlots] = {};
  bool used_[kSlots] = {};
  size_t next_ = 0;
};

StagingSlots& staging() {
  static StagingSlots* slots = new StagingSlots();  // never freed: the driver may be gone at exit
  return *slots;
}

std::atomic<int64_t> g_queued{0};  // queued_count()

// The capture under way, if any (see CUDA graphs below).
struct Capture {
  bool on = false;
  int pool = 0;
  std::vector<void*> pinned;  // the uploads' sources, kept with the graph
};
Capture g_capture;

void check_not_capturing(const char* what) {
  MSMIX_CHECK(!g_capture.on, "{} inside a captured CUDA graph step: a graph cannot wait for the host (a read "
              "back or a synchronisation in the step); run without cuda_graph, or move the read out of the step",
              what);
}

}  // namespace

// All work goes to the per-thread default stream (nvcc --default-stream per-thread): stream 0 below is it.
void memcpy_host_to_device(void* dst, const void* src, size_t bytes) {
  count_queued();
  if (bytes == 0) return;
  if (g_capture.on) {  // the graph copies from pinned memory it keeps: the values are fixed at capture
    void* pinned = nullptr;
    CUDA_CHECK(cudaHostAlloc(&pinned, bytes, cudaHostAllocDefault));
    g_capture.pinned.push_back(pinned);
    std::memcpy(pinned, src, bytes);
    CUDA_CHECK(cudaMemcpyAsync(dst, pinned, bytes, cudaMemcpyHostToDevice, 0));
  } else if (staging().fits(bytes)) {
    staging().copy(dst, src, bytes);
  } else {
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
  }
}
void memcpy_device_to_host(void* dst, const void* src, size_t bytes) {
  count_host_read();  // engine/tensor.h: a step should make none
  check_not_capturing("a copy to the host");
  CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}
void memcpy_device_to_device(void* dst, const void* src, size_t bytes) {
  count_queued();
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, 0));
}
void memset_zero(void* dst, size_t bytes) {
  count_queued();
  CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, 0));
}

int64_t queued_count() { return g_queued.load(); }
void count_queued() { ++g_queued; }
void synchronize() {
  check_not_capturing("a synchronisation");
  CUDA_CHECK(cudaDeviceSynchronize());
}

// ---- CUDA graphs

struct CapturedGraph {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  int pool = 0;
  std::vector<void*> pinned;
  ~CapturedGraph() {  // errors ignored: a destructor must not throw, and the context may be gone at exit
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    for (void* p : pinned) cudaFreeHost(p);
    if (pool) allocator_release_pool(Device::cuda(), pool);
  }
};

bool capturing() { return g_capture.on; }

void begin_capture() {
  MSMIX_CHECK(!g_capture.on, "begin_capture: a capture is already under way");
  g_capture = Capture{};
  g_capture.pool = allocator_new_pool(Device::cuda());
  allocator_use_pool(Device::cuda(), g_capture.pool);
  // Relaxed: the allocator may still call cudaMalloc (not recorded: the pool keeps the block for the graph).
  const cudaError_t err = cudaStreamBeginCapture(cudaStreamPerThread, cudaStreamCaptureModeRelaxed);
  if (err != cudaSuccess) {
    allocator_use_pool(Device::cuda(), 0);
    allocator_release_pool(Device::cuda(), g_capture.pool);
    CUDA_CHECK(err);
  }
  g_capture.on = true;
}

std::shared_ptr<CapturedGraph> end_capture() {
  MSMIX_CHECK(g_capture.on, "end_capture: no capture under way");
  g_capture.on = false;
  allocator_use_pool(Device::cuda(), 0);
  auto g = std::make_shared<CapturedGraph>();
  g->pool = g_capture.pool;
  g->pinned = std::move(g_capture.pinned);
  CUDA_CHECK(cudaStreamEndCapture(cudaStreamPerThread, &g->graph));
  CUDA_CHECK(cudaGraphInstantiateWithFlags(&g->exec, g->graph, 0));
  return g;
}

void abort_capture() {
  if (!g_capture.on) return;
  g_capture.on = false;
  allocator_use_pool(Device::cuda(), 0);
  cudaGraph_t graph = nullptr;
  if (cudaStreamEndCapture(cudaStreamPerThread, &graph) == cudaSuccess && graph) cudaGraphDestroy(graph);
  cudaGetLastError();  // an invalidated capture leaves its error behind
  for (void* p : g_capture.pinned) cudaFreeHost(p);
  allocator_release_pool(Device::cuda(), g_capture.pool);
  g_capture = Capture{};
}

void replay(const CapturedGraph& g) {
  check_not_capturing("a graph replay");
  count_queued();
  CUDA_CHECK(cudaGraphLaunch(g.exec, cudaStreamPerThread));
}

#ifdef MSMIX_HAVE_NVTX
void range_push(const char* name) { nvtxRangePushA(name); }
void range_pop() { nvtxRangePop(); }
#else  // a toolkit without NVTX's headers: no ranges
void range_push(const char*) {}
void range_pop() {}
#endif

}  // namespace msmix::cuda

namespace msmix::cuda {

// dst[i] += src[i]; one thread per element, memory bound.
__global__ void add_inplace_kernel(float* dst, const float* src, size_t n) {
  size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i < n) dst[i] += src[i];
}

void add_inplace(float* dst, const float* src, size_t n) {
  if (n == 0) return;
  unsigned blocks = unsigned((n + 255) / 256);
  add_inplace_kernel<<<blocks, 256>>>(dst, src, n);
  CUDA_CHECK_LAUNCH("add_inplace");
}

// dst[i] = value; one thread per element, memory bound.
__global__ void fill_kernel(float* dst, float value, size_t n) {
  size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i < n) dst[i] = value;
}

void fill(float* dst, float value, size_t n) {
  if (n == 0) return;
  unsigned blocks = unsigned((n + 255) / 256);
  fill_kernel<<<blocks, 256>>>(dst, value, n);
  CUDA_CHECK_LAUNCH("fill");
}

// One element a thread, from the same Philox functions as the CPU loop (engine/philox.h).
template <bool normal>
__global__ void fill_random_kernel(float* dst, size_t n, float a, float b, uint64_t seed, uint64_t offset,
                                   const uint64_t* base) {
  size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const uint64_t o = base ? *base + offset : offset;
  // Rounded as the CPU loop rounds (a product, then a sum): nvcc would fuse them into one FMA, which moves the
  // last bit of about a third of rand's values whenever lo != 0.
  dst[i] = normal ? __fadd_rn(a, __fmul_rn(b, philox::normal(seed, o, i)))
                  : __fadd_rn(a, __fmul_rn(b - a, philox::uniform(seed, o, i)));
}

void fill_uniform(float* dst, size_t n, float lo, float hi, uint64_t seed, uint64_t offset, const uint64_t* base) {
  if (n == 0) return;
  fill_random_kernel<false><<<unsigned((n + 255) / 256), 256>>>(dst, n, lo, hi, seed, offset, base);
  CUDA_CHECK_LAUNCH("fill_uniform");
}

void fill_normal(float* dst, size_t n, float mean, float std, uint64_t seed, uint64_t offset, const uint64_t* base) {
  if (n == 0) return;
  fill_random_kernel<true><<<unsigned((n + 255) / 256), 256>>>(dst, n, mean, std, seed, offset, base);
  CUDA_CHECK_LAUNCH("fill_normal");
}

}  // namespace msmix::cuda
