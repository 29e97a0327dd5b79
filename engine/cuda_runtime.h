// The CUDA runtime as the engine sees it. engine/cuda/runtime.cu implements it when nvcc is found;
// engine/nocuda/stubs.cpp otherwise (device_count() == 0, everything else throws "built without CUDA").
// This pair is the only place where the CPU-only and CUDA builds differ.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace msmix::cuda {

bool compiled();               // true in a CUDA build
int device_count();            // GPUs visible; 0 without a driver or a GPU (never throws)
std::string device_name(int index);
std::string runtime_info();    // "CUDA runtime 13.0, driver 12.4" or why none
void* malloc(size_t bytes);
void free(void* ptr);
void memcpy_host_to_device(void* dst, const void* src, size_t bytes);
void memcpy_device_to_host(void* dst, const void* src, size_t bytes);
void memcpy_device_to_device(void* dst, const void* src, size_t bytes);
void memset_zero(void* dst, size_t bytes);
void synchronize();

// Work queued on the GPU so far: kernel launches (CUDA_CHECK_LAUNCH), cuBLAS calls, copies and memsets. Each
// costs the host a few microseconds, which is what bounds small models; `msmix bench` reports it per step.
// 0 in a CPU-only build.
int64_t queued_count();
void count_queued();

// CUDA graphs. The work this thread queues between begin_capture and end_capture is recorded, not run, into a
// graph that replay() then runs as one launch, on the same addresses each time. While capturing: allocations
// come from a private pool the graph keeps (engine/allocator.h), uploads copy from pinned memory the graph
// keeps (their values are fixed at capture), and a read back or a synchronisation throws (a graph cannot wait
// for the host). After an error during capture, abort_capture() discards it. msmix/graph_step.h uses them.
struct CapturedGraph;
bool capturing();
void begin_capture();
std::shared_ptr<CapturedGraph> end_capture();
void abort_capture();
void replay(const CapturedGraph& graph);

// NVTX ranges (Nsight Systems' timeline; engine/profile.h wraps them). No-ops in a CPU-only build, and
// nearly free in a CUDA build when no profiler is attached.
void range_push(const char* name);
void range_pop();

}  // namespace msmix::cuda

namespace msmix::cuda {
// dst[i] += src[i]: autograd's grad accumulation, the one kernel the engine layer needs.
void add_inplace(float* dst, const float* src, size_t n);
// dst[i] = value: Tensor::fill_ on the GPU (a fill with 0 uses memset_zero).
void fill(float* dst, float value, size_t n);
// Tensor::rand / randn on the GPU: dst[i] = lo + (hi - lo) * philox::uniform(seed, o, i), or mean + std *
// philox::normal(seed, o, i), with o = offset, or *base + offset inside a captured graph step (engine/random.h,
// KernelOffset), so each replay draws what an uncaptured step would.
void fill_uniform(float* dst, size_t n, float lo, float hi, uint64_t seed, uint64_t offset, const uint64_t* base);
void fill_normal(float* dst, size_t n, float mean, float std, uint64_t seed, uint64_t offset, const uint64_t* base);
}  // namespace msmix::cuda
