// The CUDA runtime as the engine sees it. engine/cuda/runtime.cu implements it when nvcc is found;
// engine/nocuda/stubs.cpp otherwise (device_count() == 0, everything else throws "built without CUDA").
// This pair is the only place where the CPU-only and CUDA builds differ.
#pragma once
#include <cstddef>
#include <cstdint>
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
}  // namespace msmix::cuda
