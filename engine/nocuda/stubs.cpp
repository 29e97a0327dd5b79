// Linked instead of engine/cuda/*.cu when the build has no CUDA (make CUDA=0 or no nvcc).
#include "engine/cuda_runtime.h"
#include "engine/error.h"

namespace msmix::cuda {

[[noreturn]] void no_cuda(const char* what) {
  throw Error(fmt::format("{}: msmix was built without CUDA (rebuild with nvcc on PATH or make CUDA=1)", what));
}

bool compiled() { return false; }
int device_count() { return 0; }
std::string device_name(int) { no_cuda("cuda::device_name"); }
std::string runtime_info() { return "not compiled in"; }
void* malloc(size_t) { no_cuda("cuda::malloc"); }
void free(void*) { no_cuda("cuda::free"); }
void memcpy_host_to_device(void*, const void*, size_t) { no_cuda("cuda::memcpy"); }
void memcpy_device_to_host(void*, const void*, size_t) { no_cuda("cuda::memcpy"); }
void memcpy_device_to_device(void*, const void*, size_t) { no_cuda("cuda::memcpy"); }
void memset_zero(void*, size_t) { no_cuda("cuda::memset"); }
void synchronize() { no_cuda("cuda::synchronize"); }
int64_t queued_count() { return 0; }
void count_queued() {}
struct CapturedGraph {};
bool capturing() { return false; }
void begin_capture() { no_cuda("cuda::begin_capture"); }
std::shared_ptr<CapturedGraph> end_capture() { no_cuda("cuda::end_capture"); }
void abort_capture() {}
void replay(const CapturedGraph&) { no_cuda("cuda::replay"); }
void range_push(const char*) {}  // profiling ranges: nothing to mark without CUDA
void range_pop() {}

}  // namespace msmix::cuda

namespace msmix::cuda {
void add_inplace(float*, const float*, size_t) { no_cuda("cuda::add_inplace"); }
void fill(float*, float, size_t) { no_cuda("cuda::fill"); }
void fill_uniform(float*, size_t, float, float, uint64_t, uint64_t, const uint64_t*) { no_cuda("cuda::fill_uniform"); }
void fill_normal(float*, size_t, float, float, uint64_t, uint64_t, const uint64_t*) { no_cuda("cuda::fill_normal"); }
}  // namespace msmix::cuda
