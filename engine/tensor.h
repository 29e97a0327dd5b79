// Tensor: a handle (shared pointer) to a float32, contiguous, row-major array on one device,
// plus, when it takes part in autograd, its grad and the Node that produced it.
// Copying a Tensor copies the handle, not the data. A view that would need strides is a copy op.
#pragma once
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/shape.h"

namespace msmix {

struct Node;
struct TensorImpl;
struct Generator;

// Owns one block from the device's caching allocator.
struct Storage {
  Storage(size_t numel, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  float* data;
  size_t numel;
  Device device;
  // Set by index_tensor() (ops/ops.h): the values as the host made them (each a non-negative integer), so
  // index ops check them and the GPU's scatter-add plans them without reading the device copy back. Null
  // for any other tensor; the in-place writers (copy_, fill_) reset it.
  std::shared_ptr<const std::vector<int64_t>> host_index;
  // Set by bounded_index() (ops/ops.h): every value is known to be an integer in [0, index_bound), as the op
  // or host code that made it guarantees, so index ops neither check nor read it. 0: not known.
  int64_t index_bound = 0;
};

class Tensor {
 public:
  Tensor() = default;  // undefined: defined() is false
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- creation
  static Tensor empty(const Shape& shape, Device device = Device::cpu());  // uninitialised
  static Tensor zeros(const Shape& shape, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, Device device = Device::cpu());
  static Tensor full(const Shape& shape, float value, Device device = Device::cpu());
  static Tensor arange(int64_t n, Device device = Device::cpu());  // 0, 1, ..., n-1
  static Tensor arange(float start, float end, float step = 1, Device device = Device::cpu());
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape, Device device = Device::cpu());
  static Tensor scalar(float value, Device device = Device::cpu());  // rank 0
  // Uniform [lo, hi) and normal(mean, std) draws from a Philox stream: same numbers on every device.
  static Tensor rand(const Shape& shape, Generator& gen, float lo = 0, float hi = 1, Device device = Device::cpu());
  static Tensor randn(const Shape& shape, Generator& gen, float mean = 0, float std = 1, Device device = Device::cpu());
  // The same from the default generator.
  static Tensor rand(const Shape& shape, float lo = 0, float hi = 1, Device device = Device::cpu());
  static Tensor randn(const Shape& shape, float mean = 0, float std = 1, Device device = Device::cpu());

  // ---- properties
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int64_t dim() const;
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const;
  Device device() const;
  bool is_cuda() const { return device().is_cuda(); }
  float* data() const;  // device pointer for CUDA tensors
  std::string str() const;  // "Tensor[2, 3] cpu\n[[...]]"

  // ---- values
  float item() const;                    // one-element tensors only
  std::vector<float> to_vector() const;  // copies to the host
  Tensor to(Device device) const;        // differentiable; same tensor when already there
  Tensor clone() const;                  // differentiable deep copy
  Tensor detach() const;                 // shares storage, no autograd history
  void copy_(const Tensor& src);         // in-place, same shape, any devices; not recorded
  void fill_(float value);               // in-place, not recorded

  // ---- autograd
  bool requires_grad() const;
  Tensor& set_requires_grad(bool on = true);
  Tensor grad() const;  // undefined until a backward reaches it
  void set_grad(const Tensor& grad);
  void zero_grad();     // drops the grad (set to undefined), as PyTorch's set_to_none
  bool is_leaf() const;
  const std::shared_ptr<Node>& grad_fn() const;
  void backward() const;                      // this must hold one element
  void backward(const Tensor& grad_output) const;

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& other) const { return impl_ == other.impl_; }

 private:
  void check_defined(const char* what) const;
  std::shared_ptr<TensorImpl> impl_;
};

struct TensorImpl {
  Shape shape;
  std::shared_ptr<Storage> storage;
  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<Node> grad_fn;  // null for leaves
};

// "[2, 3] cpu" for error messages.
std::string describe(const Tensor& t);

// Reads of values by the host: every copy from a GPU to the host (to_vector, item, copy_, and the kernels'
// own read-backs), and to_vector() / item() of CPU tensors, which stand for the same reads in a CPU run. On a
// GPU each one waits for the device to finish everything queued, so a training step makes none; counting
// them on the CPU too lets a CPU test hold the step to that (tests/msmix/test_host_reads.cpp).
int64_t host_read_count();
void count_host_read();  // called by those reads
// Throws "op: tensors on different devices: cpu and cuda:0" unless all defined tensors share a device.
Device common_device(const char* op, std::initializer_list<const Tensor*> tensors);

}  // namespace msmix
