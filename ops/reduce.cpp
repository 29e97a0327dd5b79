// sum, mean, max (amax), var over any set of dims, with keepdim.
#include <algorithm>

#include "engine/error.h"
#include "engine/profile.h"
#include "ops/cpu/reduce.h"
#include "ops/cuda/kernels.h"
#include "ops/ops.h"

namespace msmix {
namespace {

// Sorted, unique, non-negative dims; an empty list means every dim.
std::vector<int64_t> resolve_dims(const char* op, const std::vector<int64_t>& dims, int64_t rank) {
  std::vector<int64_t> out;
  if (dims.empty())
    for (int64_t d = 0; d < rank; ++d) out.push_back(d);
  for (int64_t d : dims) out.push_back(normalize_dim(d, rank, op));
  std::sort(out.begin(), out.end());
  MSMIX_CHECK(std::adjacent_find(out.begin(), out.end()) == out.end(), "{}: repeated dim in {}", op,
              shape_str(dims));
  return out;
}

Shape reduced_shape(const Shape& shape, const std::vector<int64_t>& dims, bool keepdim) {
  Shape out;
  for (int64_t d = 0; d < int64_t(shape.size()); ++d) {
    bool reduced = std::binary_search(dims.begin(), dims.end(), d);
    if (!reduced) out.push_back(shape[d]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

// Reduces the (sorted) dims one run of adjacent dims at a time, last run first, each run as one
// [outer, D, inner] pass. Result has keepdim shape.
Tensor reduce_raw(ReduceOp op, const char* name, const Tensor& x, const std::vector<int64_t>& dims) {
  Shape shape = x.shape();
  for (int64_t d : dims)
    MSMIX_CHECK(shape[d] > 0 || op == ReduceOp::Sum, "{}: cannot reduce over an empty dim of {}", name, describe(x));
  Tensor cur = x;
  for (int64_t k = int64_t(dims.size()) - 1; k >= 0;) {
    int64_t hi = dims[k], lo = hi;
    while (k > 0 && dims[k - 1] == lo - 1) lo = dims[--k];
    --k;
    int64_t outer = 1, D = 1, inner = 1;
    for (int64_t d = 0; d < lo; ++d) outer *= shape[d];
    for (int64_t d = lo; d <= hi; ++d) D *= shape[d];
    for (int64_t d = hi + 1; d < int64_t(shape.size()); ++d) inner *= shape[d];
    for (int64_t d = lo; d <= hi; ++d) shape[d] = 1;
    Tensor next = Tensor::empty(shape, x.device());
    if (x.is_cuda()) cuda::reduce_dim(op, cur.data(), next.data(), outer, D, inner);
    else cpu::reduce_dim(op, cur.data(), next.data(), outer, D, inner);
    cur = next;
  }
  return cur.same(x) ? x.detach().clone() : cur;
}

}  // namespace

Tensor sum(const Tensor& x) { return sum(x, {}, false); }
Tensor mean(const Tensor& x) { return mean(x, {}, false); }

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim) {
  MSMIX_OP_RANGE("sum");
  MSMIX_CHECK(x.defined(), "sum: undefined input");
  std::vector<int64_t> dims = resolve_dims("sum", dims_in, x.dim());
  Tensor kept = reduce_raw(ReduceOp::Sum, "sum", x, dims);
  Tensor out = reshape(kept.detach(), reduced_shape(x.shape(), dims, keepdim));
  if (any_requires_grad({&x})) {
    Shape keep_shape = kept.shape(), x_shape = x.shape();
    record(out, "sum", {x}, [keep_shape, x_shape](const Tensor& g, const std::vector<bool>&) {
      return Grads{expand(reshape(g, keep_shape), x_shape)};
    });
  }
  return out;
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim) {
  MSMIX_OP_RANGE("mean");
  MSMIX_CHECK(x.defined(), "mean: undefined input");
  std::vector<int64_t> dims = resolve_dims("mean", dims_in, x.dim());
  int64_t count = 1;
  for (int64_t d : dims) count *= x.size(d);
  MSMIX_CHECK(count > 0, "mean: no elements to average in {}", describe(x));
  return mul(sum(x, dims_in, keepdim), 1.0f / float(count));
}

Tensor max(const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim) {
  MSMIX_OP_RANGE("max");
  MSMIX_CHECK(x.defined(), "max: undefined input");
  std::vector<int64_t> dims = resolve_dims("max", dims_in, x.dim());
  Tensor kept = reduce_raw(ReduceOp::Max, "max", x, dims);
  Tensor out = reshape(kept.detach(), reduced_shape(x.shape(), dims, keepdim));
  if (any_requires_grad({&x})) {
    Tensor x_ = x.detach(), m_ = kept.detach();
    std::vector<int64_t> rdims = dims;
    record(out, "max", {x}, [x_, m_, rdims](const Tensor& g, const std::vector<bool>&) {
      // Ties share the grad equally: g * [x == max] / count(x == max).
      Tensor mask = eq(x_, m_);
      Tensor count = sum(mask, rdims, true);
      return Grads{mul(mask, div(reshape(g, m_.shape()), count))};
    });
  }
  return out;
}

Tensor var(const Tensor& x, const std::vector<int64_t>& dims_in, bool unbiased, bool keepdim) {
  MSMIX_OP_RANGE("var");
  MSMIX_CHECK(x.defined(), "var: undefined input");
  std::vector<int64_t> dims = resolve_dims("var", dims_in, x.dim());
  int64_t count = 1;
  for (int64_t d : dims) count *= x.size(d);
  MSMIX_CHECK(count > (unbiased ? 1 : 0), "var: {} element(s) over dims {} of {} is too few", count,
              shape_str(dims), describe(x));
  Tensor centered = sub(x, mean(x, dims, true));
  return mul(sum(mul(centered, centered), dims, keepdim), 1.0f / float(unbiased ? count - 1 : count));
}

}  // namespace msmix
