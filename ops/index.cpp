// Indexing ops: concat, split, chunk, slice, index_select, gather, masked_fill, where, embedding.
// All are copies into a new contiguous tensor. Index tensors are float32 holding integers, validated here
// (integral, in range, never negative) before a kernel reads them. Index and mask arguments get no grad.
#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "engine/profile.h"
#include "ops/cpu/index.h"
#include "ops/cuda/kernels.h"
#include "ops/ops.h"

namespace msmix {
namespace {

// A shape seen as [outer, size, inner] around `dim`: the inner floats of one (outer, dim) pair are contiguous.
struct AroundDim {
  int64_t outer = 1, size = 1, inner = 1;
};

AroundDim around(const Shape& shape, int64_t dim) {
  AroundDim v;
  for (int64_t d = 0; d < dim; ++d) v.outer *= shape[d];
  v.size = shape[dim];
  for (int64_t d = dim + 1; d < int64_t(shape.size()); ++d) v.inner *= shape[d];
  return v;
}

// Multi-index of flat position `flat` in `shape`, for error messages: "[1, 2]".
std::string position(int64_t flat, const Shape& shape) {
  Shape at(shape.size());
  for (int64_t d = int64_t(shape.size()) - 1; d >= 0; --d) {
    at[d] = flat % shape[d];
    flat /= shape[d];
  }
  return shape_str(at);
}

// Throws, naming the op, the first bad value and its position, unless every value of `index` is an integer in
// [0, limit). `target` says what is indexed: "dim 1 of x [3, 4] cpu". An index made by index_tensor() is checked
// on its host values, one made by bounded_index() by its bound; any other device index is read back to the host
// for the check (one small copy that synchronises): kernels never see a bad index.
void check_indices(const char* op, const char* name, const Tensor& index_in, int64_t limit,
                   const std::string& target) {
  if (const auto& host = index_in.impl()->storage->host_index) {  // non-negative integers by construction
    for (size_t k = 0; k < host->size(); ++k)
      MSMIX_CHECK((*host)[k] < limit, "{}: {}{} = {} is out of range [0, {}) for {}", op, name,
                  position(int64_t(k), index_in.shape()), (*host)[k], limit, target);
    return;
  }
  const int64_t bound = index_in.impl()->storage->index_bound;  // bounded_index(): valid by construction
  if (bound > 0) {
    MSMIX_CHECK(bound <= limit, "{}: {} holds values up to {} (bounded_index), out of range [0, {}) for {}", op, name,
                bound - 1, limit, target);
    return;
  }
  const Tensor index = index_in.is_cuda() ? index_in.detach().to(Device::cpu()) : index_in;
  int64_t bad = cpu::find_bad_index(index.data(), index.numel(), limit);
  if (bad < 0) return;
  float v = index.data()[bad];
  std::string at = name + position(bad, index.shape());
  MSMIX_CHECK(v == std::floor(v), "{}: {} = {} is not an integer", op, at, v);
  MSMIX_CHECK(v >= 0, "{}: {} = {} is negative; negative indices are not supported (valid range [0, {}) for {})", op,
              at, v, limit, target);
  throw Error(fmt::format("{}: {} = {} is out of range [0, {}) for {}", op, at, v, limit, target));
}

// Does `from` broadcast to exactly `to` (numpy rules, `to` unchanged)?
bool broadcasts_to(const Shape& from, const Shape& to) {
  if (from.size() > to.size()) return false;
  size_t lead = to.size() - from.size();
  for (size_t d = 0; d < from.size(); ++d)
    if (from[d] != 1 && from[d] != to[d + lead]) return false;
  return true;
}

}  // namespace

// ---------------------------------------------------------------- concat, slice, split, chunk

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  MSMIX_OP_RANGE("concat");
  MSMIX_CHECK(!xs.empty(), "concat: no tensors given");
  for (size_t k = 0; k < xs.size(); ++k) MSMIX_CHECK(xs[k].defined(), "concat: input {} is undefined", k);
  const Tensor& first = xs[0];
  int64_t d = normalize_dim(dim, first.dim(), "concat");
  int64_t total = 0;
  for (const Tensor& x : xs) {
    MSMIX_CHECK(x.device() == first.device(), "concat: tensors on different devices: {} and {}", describe(first),
                describe(x));
    MSMIX_CHECK(x.dim() == first.dim(), "concat: ranks differ: {} and {}", shape_str(first.shape()),
                shape_str(x.shape()));
    for (int64_t e = 0; e < x.dim(); ++e)
      MSMIX_CHECK(e == d || x.size(e) == first.size(e), "concat: shapes differ outside dim {}: {} and {}", d,
                  shape_str(first.shape()), shape_str(x.shape()));
    total += x.size(d);
  }
  Shape out_shape = first.shape();
  out_shape[d] = total;
  Tensor out = Tensor::empty(out_shape, first.device());
  AroundDim v = around(out_shape, d);
  std::vector<int64_t> sizes;
  for (const Tensor& x : xs) sizes.push_back(x.size(d));
  const auto copy = first.is_cuda() ? cuda::copy_along_dim : cpu::copy_along_dim;
  int64_t offset = 0;
  for (size_t k = 0; k < xs.size(); offset += sizes[k], ++k)  // x_k [outer, size_k, inner] -> out[:, offset + ...]
    copy(xs[k].data(), sizes[k], 0, out.data(), total, offset, v.outer, sizes[k], v.inner);

  if (any_requires_grad(xs)) {
    std::vector<Shape> shapes;
    for (const Tensor& x : xs) shapes.push_back(x.shape());
    record(out, "concat", xs, [shapes, sizes, v, total](const Tensor& g, const std::vector<bool>& needs) {
      const auto copy = g.is_cuda() ? cuda::copy_along_dim : cpu::copy_along_dim;
      Grads grads(shapes.size());
      int64_t offset = 0;
      for (size_t k = 0; k < shapes.size(); offset += sizes[k], ++k) {  // grad k = g[:, offset:offset+size_k]
        if (!needs[k]) continue;
        grads[k] = Tensor::empty(shapes[k], g.device());
        copy(g.data(), total, offset, grads[k].data(), sizes[k], 0, v.outer, sizes[k], v.inner);
      }
      return grads;
    });
  }
  return out;
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end) {
  MSMIX_OP_RANGE("slice");
  MSMIX_CHECK(x.defined(), "slice: undefined input");
  int64_t d = normalize_dim(dim, x.dim(), "slice");
  AroundDim v = around(x.shape(), d);
  // Python slicing: negative bounds count from the end, then both clamp to [0, size]; end < start is empty.
  auto bound = [n = v.size](int64_t i) { return std::clamp(i < 0 ? i + n : i, int64_t(0), n); };
  int64_t s = bound(start), len = std::max(bound(end), s) - s;
  Shape out_shape = x.shape();
  out_shape[d] = len;
  Tensor out = Tensor::empty(out_shape, x.device());
  if (x.is_cuda()) cuda::copy_along_dim(x.data(), v.size, s, out.data(), len, 0, v.outer, len, v.inner);
  else cpu::copy_along_dim(x.data(), v.size, s, out.data(), len, 0, v.outer, len, v.inner);

  if (any_requires_grad({&x})) {
    Shape x_shape = x.shape();
    record(out, "slice", {x}, [x_shape, v, s, len](const Tensor& g, const std::vector<bool>&) {
      Tensor gx = Tensor::zeros(x_shape, g.device());  // zero outside [s, s + len)
      (g.is_cuda() ? cuda::copy_along_dim : cpu::copy_along_dim)(g.data(), len, 0, gx.data(), v.size, s, v.outer, len,
                                                                 v.inner);
      return Grads{gx};
    });
  }
  return out;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  MSMIX_OP_RANGE("split");
  MSMIX_CHECK(x.defined(), "split: undefined input");
  int64_t d = normalize_dim(dim, x.dim(), "split");
  int64_t total = 0;
  for (int64_t size : sizes) {
    MSMIX_CHECK(size >= 0, "split: negative size in {}", shape_str(sizes));
    total += size;
  }
  MSMIX_CHECK(total == x.size(d), "split: sizes {} sum to {}, but dim {} of {} has size {}", shape_str(sizes), total,
              dim, describe(x), x.size(d));
  // Each piece is its own slice node, so any subset of the pieces can feed the loss.
  std::vector<Tensor> pieces;
  int64_t offset = 0;
  for (int64_t size : sizes) {
    pieces.push_back(slice(x, d, offset, offset + size));
    offset += size;
  }
  return pieces;
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  MSMIX_OP_RANGE("chunk");
  MSMIX_CHECK(x.defined(), "chunk: undefined input");
  MSMIX_CHECK(chunks > 0, "chunk: chunks must be positive, got {}", chunks);
  int64_t d = normalize_dim(dim, x.dim(), "chunk");
  int64_t n = x.size(d);
  // As torch.chunk: pieces of ceil(n / chunks), the last one smaller, so there may be fewer than `chunks`;
  // an empty dim gives `chunks` empty pieces.
  std::vector<int64_t> sizes;
  if (n == 0) sizes.assign(size_t(chunks), 0);
  int64_t step = n / chunks + (n % chunks != 0);
  for (int64_t left = n; left > 0; left -= step) sizes.push_back(std::min(step, left));
  return split(x, sizes, d);
}

// ---------------------------------------------------------------- index_select, gather, embedding

Tensor index_tensor(const std::vector<int64_t>& values, Device device) {
  std::vector<float> v;
  v.reserve(values.size());
  for (size_t k = 0; k < values.size(); ++k) {
    MSMIX_CHECK(values[k] >= 0 && values[k] < (int64_t(1) << 24), "index_tensor: value {} at [{}] is outside "
                "[0, 2^24) (float32 holds integers exactly only up to 2^24)", values[k], k);
    v.push_back(float(values[k]));
  }
  Tensor t = Tensor::from_vector(v, {int64_t(v.size())}, device);
  t.impl()->storage->host_index = std::make_shared<const std::vector<int64_t>>(values);
  return t;
}

Tensor bounded_index(const Tensor& values, int64_t bound) {
  MSMIX_CHECK(values.defined() && bound > 0 && bound <= (int64_t(1) << 24),
              "bounded_index: needs values and a bound in [1, 2^24], got {} and {}",
              values.defined() ? describe(values) : "undefined", bound);
  Tensor out = reshape(values.detach(), {values.numel()});  // the same storage
  out.impl()->storage->index_bound = bound;
  return out;
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  MSMIX_OP_RANGE("index_select");
  MSMIX_CHECK(x.defined() && index.defined(), "index_select: undefined input");
  Device dev = common_device("index_select", {&x, &index});
  MSMIX_CHECK(index.dim() == 1, "index_select: index must be 1-D, got {}", describe(index));
  int64_t d = normalize_dim(dim, x.dim(), "index_select");
  AroundDim v = around(x.shape(), d);
  int64_t n = index.numel();
  Shape out_shape = x.shape();
  out_shape[d] = n;
  Tensor out = Tensor::empty(out_shape, dev);
  check_indices("index_select", "index", index, v.size, fmt::format("dim {} of x {}", dim, describe(x)));
  (dev.is_cuda() ? cuda::index_select_forward : cpu::index_select_forward)(x.data(), v.outer, v.size, v.inner,
                                                                           index.data(), n, out.data());

  if (any_requires_grad({&x})) {
    Tensor index_ = index.detach();
    Shape x_shape = x.shape();
    record(out, "index_select", {x}, [index_, x_shape, v, n](const Tensor& g, const std::vector<bool>&) {
      Tensor gx = Tensor::zeros(x_shape, g.device());  // scatter-add: repeated indices accumulate
      const auto& host = index_.impl()->storage->host_index;  // the GPU plans from it without a read back
      if (!g.is_cuda()) cpu::index_select_backward(g.data(), v.outer, v.size, v.inner, index_.data(), n, gx.data());
      else if (host) cuda::index_select_backward_host(g.data(), v.outer, v.size, v.inner, *host, gx.data());
      else if (n * gx.numel() <= cuda::kSearchScatterMax)  // small: no read back either
        cuda::index_select_backward_search(g.data(), v.outer, v.size, v.inner, index_.data(), n, gx.data());
      else cuda::index_select_backward(g.data(), v.outer, v.size, v.inner, index_.data(), n, gx.data());
      return Grads{gx};
    });
  }
  return out;
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  MSMIX_OP_RANGE("gather");
  MSMIX_CHECK(x.defined() && index.defined(), "gather: undefined input");
  Device dev = common_device("gather", {&x, &index});
  MSMIX_CHECK(index.dim() == x.dim(), "gather: index {} must have the rank of x {}", describe(index), describe(x));
  int64_t d = normalize_dim(dim, x.dim(), "gather");
  for (int64_t e = 0; e < x.dim(); ++e)
    MSMIX_CHECK(e == d || index.size(e) <= x.size(e), "gather: index {} is larger than x {} in dim {}",
                shape_str(index.shape()), shape_str(x.shape()), e);
  Tensor out = Tensor::empty(index.shape(), dev);
  check_indices("gather", "index", index, x.size(d), fmt::format("dim {} of x {}", dim, describe(x)));
  (dev.is_cuda() ? cuda::gather_forward : cpu::gather_forward)(x.data(), x.shape(), index.data(), index.shape(), d,
                                                               out.data());

  if (any_requires_grad({&x})) {
    Tensor index_ = index.detach();
    Shape x_shape = x.shape();
    record(out, "gather", {x}, [index_, x_shape, d](const Tensor& g, const std::vector<bool>&) {
      Tensor gx = Tensor::zeros(x_shape, g.device());  // scatter-add: repeated indices accumulate
      (g.is_cuda() ? cuda::gather_backward : cpu::gather_backward)(g.data(), index_.shape(), index_.data(), x_shape, d,
                                                                   gx.data());
      return Grads{gx};
    });
  }
  return out;
}

Tensor embedding(const Tensor& ids, const Tensor& weight) {
  MSMIX_OP_RANGE("embedding");
  MSMIX_CHECK(ids.defined() && weight.defined(), "embedding: undefined input");
  Device dev = common_device("embedding", {&ids, &weight});
  MSMIX_CHECK(weight.dim() == 2, "embedding: weight must be [V, D], got {}", describe(weight));
  int64_t V = weight.size(0), D = weight.size(1), n = ids.numel();
  Shape out_shape = ids.shape();
  out_shape.push_back(D);
  Tensor out = Tensor::empty(out_shape, dev);
  check_indices("embedding", "ids", ids, V, fmt::format("weight {}", describe(weight)));
  // Rows of weight.
  (dev.is_cuda() ? cuda::index_select_forward : cpu::index_select_forward)(weight.data(), 1, V, D, ids.data(), n,
                                                                           out.data());

  if (any_requires_grad({&weight})) {
    Tensor ids_ = ids.detach();
    record(out, "embedding", {weight}, [ids_, V, D, n](const Tensor& g, const std::vector<bool>&) {
      Tensor gw = Tensor::zeros({V, D}, g.device());  // rows never looked up get 0; repeats accumulate
      (g.is_cuda() ? cuda::index_select_backward : cpu::index_select_backward)(g.data(), 1, V, D, ids_.data(), n,
                                                                               gw.data());
      return Grads{gw};
    });
  }
  return out;
}

// ---------------------------------------------------------------- masked_fill, where

Tensor masked_fill(const Tensor& x, const Tensor& mask, float value) {
  MSMIX_OP_RANGE("masked_fill");
  MSMIX_CHECK(x.defined() && mask.defined(), "masked_fill: undefined input");
  Device dev = common_device("masked_fill", {&x, &mask});
  MSMIX_CHECK(broadcasts_to(mask.shape(), x.shape()), "masked_fill: mask {} does not broadcast to x {}",
              shape_str(mask.shape()), shape_str(x.shape()));
  Tensor out = Tensor::empty(x.shape(), dev);
  if (dev.is_cuda()) {
    const Tensor v = Tensor::scalar(value, dev);  // the kernel reads the fill value from device memory
    cuda::where_forward(mask.data(), mask.shape(), v.data(), {}, x.data(), x.shape(), out.data(), x.shape());
  } else {
    cpu::where_forward(mask.data(), mask.shape(), &value, {}, x.data(), x.shape(), out.data(), x.shape());
  }

  if (any_requires_grad({&x})) {
    Tensor mask_ = mask.detach();
    record(out, "masked_fill", {x}, [mask_](const Tensor& g, const std::vector<bool>&) {
      Tensor gx = Tensor::empty(g.shape(), g.device());  // 0 where filled: the output does not depend on x there
      float zero = 0;
      if (g.is_cuda())
        cuda::where_forward(mask_.data(), mask_.shape(), Tensor::zeros({}, g.device()).data(), {}, g.data(), g.shape(),
                            gx.data(), g.shape());
      else cpu::where_forward(mask_.data(), mask_.shape(), &zero, {}, g.data(), g.shape(), gx.data(), g.shape());
      return Grads{gx};
    });
  }
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  MSMIX_OP_RANGE("where");
  MSMIX_CHECK(cond.defined() && a.defined() && b.defined(), "where: undefined input");
  Device dev = common_device("where", {&cond, &a, &b});
  Shape out_shape;
  try {
    out_shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  } catch (const Error&) {
    throw Error(fmt::format("where: cond {}, a {} and b {} cannot be broadcast together", shape_str(cond.shape()),
                            shape_str(a.shape()), shape_str(b.shape())));
  }
  Tensor out = Tensor::empty(out_shape, dev);
  (dev.is_cuda() ? cuda::where_forward : cpu::where_forward)(cond.data(), cond.shape(), a.data(), a.shape(), b.data(),
                                                             b.shape(), out.data(), out_shape);

  if (any_requires_grad({&a, &b})) {
    Tensor cond_ = cond.detach();
    Shape a_shape = a.shape(), b_shape = b.shape();
    record(out, "where", {a, b}, [cond_, a_shape, b_shape](const Tensor& g, const std::vector<bool>& needs) {
      // a gets g where cond holds, b gets it elsewhere; each summed back over its broadcast dims.
      const auto where_kernel = g.is_cuda() ? cuda::where_forward : cpu::where_forward;
      const Tensor zero_t = g.is_cuda() ? Tensor::zeros({}, g.device()) : Tensor();  // a device 0 for the GPU
      float zero_h = 0;
      const float* zero = g.is_cuda() ? zero_t.data() : &zero_h;
      Tensor ga, gb;
      if (needs[0]) {
        Tensor full = Tensor::empty(g.shape(), g.device());
        where_kernel(cond_.data(), cond_.shape(), g.data(), g.shape(), zero, {}, full.data(), g.shape());
        ga = sum_to(full, a_shape);
      }
      if (needs[1]) {
        Tensor full = Tensor::empty(g.shape(), g.device());
        where_kernel(cond_.data(), cond_.shape(), zero, {}, g.data(), g.shape(), full.data(), g.shape());
        gb = sum_to(full, b_shape);
      }
      return Grads{ga, gb};
    });
  }
  return out;
}

}  // namespace msmix
