#include "engine/tensor.h"

#include <atomic>
#include <cmath>
#include <cstring>

#include "engine/allocator.h"
#include "engine/autograd.h"
#include "engine/blas_kernels.h"
#include "engine/cuda_runtime.h"
#include "engine/error.h"
#include "engine/philox.h"
#include "engine/random.h"

namespace msmix {

// Before main and before any BLAS call: every program that makes tensors links this file, so this is where
// OpenBLAS gets its best kernels for this CPU (engine/blas_kernels.h says why).
__attribute__((constructor)) static void choose_blas_kernels_at_startup() { choose_blas_kernels(); }

Storage::Storage(size_t n, Device dev) : data(nullptr), numel(n), device(dev) {
  if (device.is_cuda()) {
    int count = cuda::device_count();
    MSMIX_CHECK(device.index < count, "tensor: {} requested but {} GPU(s) found{}", device.str(), count,
                cuda::compiled() ? "" : " (msmix was built without CUDA)");
  }
  data = static_cast<float*>(allocate(device, std::max<size_t>(n, 1) * sizeof(float)));
}

Storage::~Storage() { deallocate(device, data, std::max<size_t>(numel, 1) * sizeof(float)); }

// ---------------------------------------------------------------- creation

static Tensor make(const Shape& shape, Device device) {
  for (int64_t s : shape) MSMIX_CHECK(s >= 0, "tensor: negative size in shape {}", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->storage = std::make_shared<Storage>(size_t(shape_numel(shape)), device);
  return Tensor(std::move(impl));
}

// Fills a host buffer then moves it to `device` (creation is not a hot path on the GPU).
static Tensor from_host(const Shape& shape, Device device, const std::function<void(float*, int64_t)>& fill) {
  Tensor host = make(shape, Device::cpu());
  fill(host.data(), host.numel());
  return device.is_cpu() ? host : host.to(device);
}

Tensor Tensor::empty(const Shape& shape, Device device) { return make(shape, device); }

Tensor Tensor::zeros(const Shape& shape, Device device) {
  Tensor t = make(shape, device);
  t.fill_(0);
  return t;
}

Tensor Tensor::ones(const Shape& shape, Device device) { return full(shape, 1, device); }

Tensor Tensor::full(const Shape& shape, float value, Device device) {
  Tensor t = make(shape, device);
  t.fill_(value);  // on the GPU a fill kernel, not a copy from the host
  return t;
}

Tensor Tensor::arange(int64_t n, Device device) { return arange(0, float(n), 1, device); }

Tensor Tensor::arange(float start, float end, float step, Device device) {
  MSMIX_CHECK(step != 0 && std::isfinite(start) && std::isfinite(end) && std::isfinite(step),
              "arange: bad range ({}, {}, step {})", start, end, step);
  int64_t n = std::max<int64_t>(0, int64_t(std::ceil((double(end) - start) / step)));
  return from_host({n}, device, [&](float* p, int64_t m) {
    for (int64_t i = 0; i < m; ++i) p[i] = float(start + double(step) * i);
  });
}

Tensor Tensor::from_vector(const std::vector<float>& values, const Shape& shape, Device device) {
  MSMIX_CHECK(int64_t(values.size()) == shape_numel(shape), "from_vector: {} values do not fill shape {}",
              values.size(), shape_str(shape));
  return from_host(shape, device, [&](float* p, int64_t) { std::copy(values.begin(), values.end(), p); });
}

Tensor Tensor::scalar(float value, Device device) { return full({}, value, device); }

// n = numel(shape) draws from gen's Philox stream: uniform in [a, b), or normal with mean a and std b. On the
// GPU they are made there (a kernel, no upload), so a captured graph step redraws them at each replay
// (engine/random.h, KernelOffset); the numbers are the CPU's (the same Philox elements; the normal's log / cos
// may differ in the last bit).
static Tensor philox_draw(const Shape& shape, Generator& gen, bool normal, float a, float b, Device device) {
  const int64_t n = shape_numel(shape);
  const uint64_t seed = gen.seed;
  const uint64_t offset =
      gen.take(normal ? Generator::normal_blocks(uint64_t(n)) : Generator::uniform_blocks(uint64_t(n)));
  if (device.is_cuda()) {
    Tensor t = Tensor::empty(shape, device);
    const KernelOffset o = kernel_offset(gen, offset, true, normal ? "Tensor::randn" : "Tensor::rand");
    (normal ? cuda::fill_normal : cuda::fill_uniform)(t.data(), size_t(n), a, b, seed, o.offset, o.base);
    return t;
  }
  return from_host(shape, device, [=](float* p, int64_t m) {
    for (int64_t i = 0; i < m; ++i)
      p[i] = normal ? a + b * philox::normal(seed, offset, uint64_t(i))
                    : a + (b - a) * philox::uniform(seed, offset, uint64_t(i));
  });
}

Tensor Tensor::rand(const Shape& shape, Generator& gen, float lo, float hi, Device device) {
  return philox_draw(shape, gen, false, lo, hi, device);
}

Tensor Tensor::randn(const Shape& shape, Generator& gen, float mean, float std, Device device) {
  return philox_draw(shape, gen, true, mean, std, device);
}

Tensor Tensor::rand(const Shape& shape, float lo, float hi, Device device) {
  return rand(shape, default_generator(), lo, hi, device);
}
Tensor Tensor::randn(const Shape& shape, float mean, float std, Device device) {
  return randn(shape, default_generator(), mean, std, device);
}

// ---------------------------------------------------------------- properties

void Tensor::check_defined(const char* what) const {
  MSMIX_CHECK(impl_, "{}: tensor is undefined", what);
}
const Shape& Tensor::shape() const {
  check_defined("shape");
  return impl_->shape;
}
int64_t Tensor::dim() const { return int64_t(shape().size()); }
int64_t Tensor::size(int64_t d) const { return shape()[normalize_dim(d, dim(), "size")]; }
int64_t Tensor::numel() const { return shape_numel(shape()); }
Device Tensor::device() const {
  check_defined("device");
  return impl_->storage->device;
}
float* Tensor::data() const {
  check_defined("data");
  return impl_->storage->data;
}

std::string describe(const Tensor& t) {
  return t.defined() ? fmt::format("{} {}", shape_str(t.shape()), t.device().str()) : "undefined";
}

Device common_device(const char* op, std::initializer_list<const Tensor*> tensors) {
  const Tensor* first = nullptr;
  for (const Tensor* t : tensors) {
    if (!t->defined()) continue;
    if (!first) first = t;
    MSMIX_CHECK(t->device() == first->device(), "{}: tensors on different devices: {} and {}", op,
                first->device().str(), t->device().str());
  }
  MSMIX_CHECK(first, "{}: no defined input tensor", op);
  return first->device();
}

// Nested-bracket printing, at most 6 values per dim (first 3 ... last 3).
static void print_level(std::string& out, const std::vector<float>& v, const Shape& shape, size_t d, int64_t base) {
  if (d == shape.size()) {
    out += fmt::format("{:.4g}", v[base]);
    return;
  }
  int64_t stride = 1;
  for (size_t k = d + 1; k < shape.size(); ++k) stride *= shape[k];
  out += "[";
  for (int64_t i = 0; i < shape[d]; ++i) {
    if (shape[d] > 6 && i == 3) {
      out += "..., ";
      i = shape[d] - 3;
    }
    print_level(out, v, shape, d + 1, base + i * stride);
    if (i + 1 < shape[d]) out += d + 1 == shape.size() ? ", " : ",\n" + std::string(d + 1, ' ');
  }
  out += "]";
}

std::string Tensor::str() const {
  if (!impl_) return "Tensor(undefined)";
  std::string out = fmt::format("Tensor{} {}{}\n", shape_str(shape()), device().str(),
                                requires_grad() ? " requires_grad" : "");
  print_level(out, to_vector(), shape(), 0, 0);
  return out;
}

// ---------------------------------------------------------------- values

namespace {
std::atomic<int64_t> g_host_reads{0};
}

int64_t host_read_count() { return g_host_reads.load(); }
void count_host_read() { ++g_host_reads; }

float Tensor::item() const {
  MSMIX_CHECK(numel() == 1, "item: tensor {} has {} elements, expected 1", describe(*this), numel());
  return to_vector()[0];
}

std::vector<float> Tensor::to_vector() const {
  std::vector<float> out(static_cast<size_t>(numel()));
  if (is_cuda()) {
    if (!out.empty()) cuda::memcpy_device_to_host(out.data(), data(), out.size() * sizeof(float));  // counts
  } else {
    count_host_read();
    if (!out.empty()) std::memcpy(out.data(), data(), out.size() * sizeof(float));
  }
  return out;
}

void Tensor::copy_(const Tensor& src) {
  MSMIX_CHECK(defined() && src.defined() && shape() == src.shape(), "copy_: shapes differ: {} <- {}",
              describe(*this), describe(src));
  size_t bytes = size_t(numel()) * sizeof(float);
  if (bytes == 0 || data() == src.data()) return;
  impl_->storage->host_index.reset();
  impl_->storage->index_bound = 0;
  if (is_cuda() && src.is_cuda()) {
    cuda::memcpy_device_to_device(data(), src.data(), bytes);
  } else if (is_cuda()) {
    cuda::memcpy_host_to_device(data(), src.data(), bytes);
  } else if (src.is_cuda()) {
    cuda::memcpy_device_to_host(data(), src.data(), bytes);
  } else {
    std::memcpy(data(), src.data(), bytes);
  }
}

void Tensor::fill_(float value) {
  check_defined("fill_");
  impl_->storage->host_index.reset();
  impl_->storage->index_bound = 0;
  if (is_cuda() && value == 0) {
    cuda::memset_zero(data(), size_t(numel()) * sizeof(float));
  } else if (is_cuda()) {
    cuda::fill(data(), value, size_t(numel()));
  } else {
    std::fill(data(), data() + numel(), value);
  }
}

Tensor Tensor::to(Device target) const {
  check_defined("to");
  if (device() == target) return *this;
  Tensor out = empty(shape(), target);
  out.copy_(*this);
  if (any_requires_grad({this})) {
    Device source = device();
    record(out, "to", {*this}, [source](const Tensor& g, const std::vector<bool>&) { return Grads{g.to(source)}; });
  }
  return out;
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), device());
  out.copy_(*this);
  if (any_requires_grad({this}))
    record(out, "clone", {*this}, [](const Tensor& g, const std::vector<bool>&) { return Grads{g}; });
  return out;
}

Tensor Tensor::detach() const {
  check_defined("detach");
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = impl_->shape;
  impl->storage = impl_->storage;
  return Tensor(std::move(impl));
}

// ---------------------------------------------------------------- autograd

bool Tensor::requires_grad() const { return impl_ && impl_->requires_grad; }

Tensor& Tensor::set_requires_grad(bool on) {
  check_defined("set_requires_grad");
  MSMIX_CHECK(on || !impl_->grad_fn, "set_requires_grad: cannot turn off grad of a non-leaf tensor {}; "
              "use detach()", describe(*this));
  impl_->requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const {
  check_defined("grad");
  return impl_->grad;
}

void Tensor::set_grad(const Tensor& grad) {
  check_defined("set_grad");
  MSMIX_CHECK(!grad.defined() || (grad.shape() == shape() && grad.device() == device()),
              "set_grad: grad {} does not match tensor {}", describe(grad), describe(*this));
  impl_->grad = grad;
}

void Tensor::zero_grad() {
  if (impl_) impl_->grad = Tensor();
}

bool Tensor::is_leaf() const { return !impl_ || !impl_->grad_fn; }

const std::shared_ptr<Node>& Tensor::grad_fn() const {
  check_defined("grad_fn");
  return impl_->grad_fn;
}

void Tensor::backward() const {
  check_defined("backward");
  MSMIX_CHECK(numel() == 1, "backward: called on {} without a grad; only one-element outputs can be "
              "differentiated implicitly", describe(*this));
  run_backward(*this, full(shape(), 1, device()));
}

void Tensor::backward(const Tensor& grad_output) const { run_backward(*this, grad_output); }

}  // namespace msmix
