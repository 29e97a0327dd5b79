// Shape ops. reshape/flatten/squeeze/unsqueeze share storage (contiguous data needs no copy);
// permute, transpose and expand copy into a new contiguous tensor.
#include <algorithm>

#include "engine/error.h"
#include "engine/profile.h"
#include "ops/cpu/binary.h"
#include "ops/cpu/permute.h"
#include "ops/cuda/kernels.h"
#include "ops/ops.h"

namespace msmix {

Tensor reshape(const Tensor& x, const Shape& shape_in) {
  MSMIX_OP_RANGE("reshape");
  MSMIX_CHECK(x.defined(), "reshape: undefined input");
  Shape shape = shape_in;
  int64_t known = 1, infer = -1;
  for (int64_t d = 0; d < int64_t(shape.size()); ++d) {
    if (shape[d] == -1) {
      MSMIX_CHECK(infer < 0, "reshape: more than one -1 in {}", shape_str(shape_in));
      infer = d;
    } else {
      MSMIX_CHECK(shape[d] >= 0, "reshape: bad size in {}", shape_str(shape_in));
      known *= shape[d];
    }
  }
  if (infer >= 0) {
    MSMIX_CHECK(known > 0 && x.numel() % known == 0, "reshape: cannot view {} as {}", describe(x),
                shape_str(shape_in));
    shape[infer] = x.numel() / known;
  }
  MSMIX_CHECK(shape_numel(shape) == x.numel(), "reshape: cannot view {} ({} elements) as {}", describe(x), x.numel(),
              shape_str(shape_in));
  if (shape == x.shape()) return x;
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->storage = x.impl()->storage;
  Tensor out(std::move(impl));
  if (any_requires_grad({&x})) {
    Shape x_shape = x.shape();
    record(out, "reshape", {x}, [x_shape](const Tensor& g, const std::vector<bool>&) {
      return Grads{reshape(g, x_shape)};
    });
  }
  return out;
}

Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  MSMIX_OP_RANGE("flatten");
  MSMIX_CHECK(x.defined(), "flatten: undefined input");
  if (x.dim() == 0) return reshape(x, {1});
  int64_t s = normalize_dim(start_dim, x.dim(), "flatten"), e = normalize_dim(end_dim, x.dim(), "flatten");
  MSMIX_CHECK(s <= e, "flatten: start_dim {} after end_dim {}", start_dim, end_dim);
  Shape shape(x.shape().begin(), x.shape().begin() + s);
  int64_t merged = 1;
  for (int64_t d = s; d <= e; ++d) merged *= x.size(d);
  shape.push_back(merged);
  shape.insert(shape.end(), x.shape().begin() + e + 1, x.shape().end());
  return reshape(x, shape);
}

Tensor squeeze(const Tensor& x, int64_t dim) {
  MSMIX_OP_RANGE("squeeze");
  MSMIX_CHECK(x.defined(), "squeeze: undefined input");
  int64_t d = normalize_dim(dim, x.dim(), "squeeze");
  MSMIX_CHECK(x.size(d) == 1, "squeeze: dim {} of {} has size {}, not 1", dim, describe(x), x.size(d));
  Shape shape = x.shape();
  shape.erase(shape.begin() + d);
  return reshape(x, shape);
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  MSMIX_OP_RANGE("unsqueeze");
  MSMIX_CHECK(x.defined(), "unsqueeze: undefined input");
  int64_t d = normalize_dim(dim, x.dim() + 1, "unsqueeze");
  Shape shape = x.shape();
  shape.insert(shape.begin() + d, 1);
  return reshape(x, shape);
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  MSMIX_OP_RANGE("permute");
  MSMIX_CHECK(x.defined(), "permute: undefined input");
  int64_t rank = x.dim();
  MSMIX_CHECK(int64_t(dims.size()) == rank, "permute: {} dims given for {}", dims.size(), describe(x));
  std::vector<int64_t> perm(rank), inverse(rank, -1);
  for (int64_t k = 0; k < rank; ++k) {
    perm[k] = normalize_dim(dims[k], rank, "permute");
    MSMIX_CHECK(inverse[perm[k]] < 0, "permute: dims {} repeat a dim", shape_str(dims));
    inverse[perm[k]] = k;
  }
  bool identity = true;
  for (int64_t k = 0; k < rank; ++k) identity = identity && perm[k] == k;
  if (identity) return x;
  Shape out_shape(rank);
  for (int64_t k = 0; k < rank; ++k) out_shape[k] = x.size(perm[k]);
  Tensor out = Tensor::empty(out_shape, x.device());
  if (x.is_cuda()) cuda::permute(x.data(), x.shape(), perm, out.data());
  else cpu::permute(x.data(), x.shape(), perm, out.data());
  if (any_requires_grad({&x}))
    record(out, "permute", {x}, [inverse](const Tensor& g, const std::vector<bool>&) {
      return Grads{permute(g, inverse)};
    });
  return out;
}

Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1) {
  MSMIX_OP_RANGE("transpose");
  MSMIX_CHECK(x.defined(), "transpose: undefined input");
  std::vector<int64_t> perm(x.dim());
  for (int64_t k = 0; k < x.dim(); ++k) perm[k] = k;
  std::swap(perm[normalize_dim(dim0, x.dim(), "transpose")], perm[normalize_dim(dim1, x.dim(), "transpose")]);
  return permute(x, perm);
}

Tensor expand(const Tensor& x, const Shape& shape_in) {
  MSMIX_OP_RANGE("expand");
  MSMIX_CHECK(x.defined(), "expand: undefined input");
  int64_t lead = int64_t(shape_in.size()) - x.dim();
  MSMIX_CHECK(lead >= 0, "expand: cannot expand {} to fewer dims {}", describe(x), shape_str(shape_in));
  Shape shape = shape_in;
  for (int64_t d = 0; d < int64_t(shape.size()); ++d) {
    if (d < lead) {
      MSMIX_CHECK(shape[d] >= 0, "expand: bad size in {}", shape_str(shape_in));
      continue;
    }
    int64_t have = x.size(d - lead);
    if (shape[d] == -1) shape[d] = have;
    MSMIX_CHECK(have == shape[d] || have == 1, "expand: cannot expand {} to {}", describe(x), shape_str(shape_in));
  }
  if (shape == x.shape()) return x;
  Tensor out = Tensor::empty(shape, x.device());
  if (x.is_cuda()) cuda::broadcast_to(x.data(), x.shape(), out.data(), shape);
  else cpu::broadcast_to(x.data(), x.shape(), out.data(), shape);
  if (any_requires_grad({&x})) {
    Shape x_shape = x.shape();
    record(out, "expand", {x}, [x_shape](const Tensor& g, const std::vector<bool>&) {
      return Grads{sum_to(g, x_shape)};
    });
  }
  return out;
}

}  // namespace msmix
