// What the cuDNN paths share (lstm_cudnn.cu, conv_cudnn.cu): the checked-call macro, the process's one handle on
// the engine's stream, and descriptors that destroy themselves. Included only where MSMIX_CUDNN is on.
#pragma once
#include <cudnn.h>
#include <fmt/format.h>

#include "engine/error.h"

// CUDNN_CHECK(call): throws msmix::Error naming the call, file:line and cuDNN's status string.
#define CUDNN_CHECK(call)                                                                                             \
  do {                                                                                                                \
    cudnnStatus_t st_ = (call);                                                                                       \
    if (st_ != CUDNN_STATUS_SUCCESS)                                                                                  \
      throw ::msmix::Error(                                                                                           \
          fmt::format("{} failed at {}:{}: {} ({})", #call, __FILE__, __LINE__, cudnnGetErrorString(st_), int(st_))); \
  } while (0)

namespace msmix::cuda {

// One handle for the process (inline: one instance across the files that use it), on the engine's stream,
// created at the first cuDNN call (a build with cuDNN but no GPU never touches it). Never destroyed: the CUDA
// context may be gone at exit.
inline cudnnHandle_t cudnn_handle() {
  static cudnnHandle_t h = [] {
    cudnnHandle_t made = nullptr;
    CUDNN_CHECK(cudnnCreate(&made));
    CUDNN_CHECK(cudnnSetStream(made, cudaStreamPerThread));  // the engine's one stream (see the Makefile)
    return made;
  }();
  return h;
}

// A cuDNN descriptor, destroyed with its owner.
template <class T, cudnnStatus_t (*Create)(T*), cudnnStatus_t (*Destroy)(T)>
class CudnnDescriptor {
 public:
  CudnnDescriptor() { CUDNN_CHECK(Create(&d_)); }
  ~CudnnDescriptor() { Destroy(d_); }
  CudnnDescriptor(const CudnnDescriptor&) = delete;
  CudnnDescriptor& operator=(const CudnnDescriptor&) = delete;
  T get() const { return d_; }

 private:
  T d_ = nullptr;
};
using CudnnTensorDesc =
    CudnnDescriptor<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;

// Bytes -> floats, rounded up: cuDNN's workspaces come from the engine's float buffers.
inline size_t cudnn_floats_in(size_t bytes) { return (bytes + sizeof(float) - 1) / sizeof(float); }

}  // namespace msmix::cuda
