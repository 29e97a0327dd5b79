// add, sub, mul, div: broadcasting forward, and backward as sum_to of the pointwise grad.
#include "engine/error.h"
#include "engine/profile.h"
#include "ops/cpu/binary.h"
#include "ops/cuda/kernels.h"
#include "ops/ops.h"

namespace msmix {
namespace {

const char* op_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return "add";
    case BinaryOp::Sub: return "sub";
    case BinaryOp::Mul: return "mul";
    case BinaryOp::Div: return "div";
    case BinaryOp::Eq: return "eq";
  }
  return "?";
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = op_name(op);
  MSMIX_OP_RANGE(name);
  MSMIX_CHECK(a.defined() && b.defined(), "{}: undefined input", name);
  Device dev = common_device(name, {&a, &b});
  Shape out_shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = Tensor::empty(out_shape, dev);
  if (dev.is_cuda()) cuda::binary_forward(op, a.data(), a.shape(), b.data(), b.shape(), out.data(), out_shape);
  else cpu::binary_forward(op, a.data(), a.shape(), b.data(), b.shape(), out.data(), out_shape);

  if (op != BinaryOp::Eq && any_requires_grad({&a, &b})) {
    Tensor a_ = a.detach(), b_ = b.detach();
    record(out, name, {a, b}, [op, a_, b_](const Tensor& g, const std::vector<bool>& needs) {
      Tensor ga, gb;
      switch (op) {
        case BinaryOp::Add:
          if (needs[0]) ga = sum_to(g, a_.shape());
          if (needs[1]) gb = sum_to(g, b_.shape());
          break;
        case BinaryOp::Sub:
          if (needs[0]) ga = sum_to(g, a_.shape());
          if (needs[1]) gb = sum_to(neg(g), b_.shape());
          break;
        case BinaryOp::Mul:
          if (needs[0]) ga = sum_to(mul(g, b_), a_.shape());
          if (needs[1]) gb = sum_to(mul(g, a_), b_.shape());
          break;
        case BinaryOp::Div:  // d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
          if (needs[0]) ga = sum_to(div(g, b_), a_.shape());
          if (needs[1]) gb = sum_to(neg(div(mul(g, a_), mul(b_, b_))), b_.shape());
          break;
        case BinaryOp::Eq:
          break;
      }
      return Grads{ga, gb};
    });
  }
  return out;
}

Tensor binary_scalar(BinaryOp op, const Tensor& a, float s, bool scalar_first) {
  const char* name = op_name(op);
  MSMIX_OP_RANGE(name);
  MSMIX_CHECK(a.defined(), "{}: undefined input", name);
  Tensor out = Tensor::empty(a.shape(), a.device());
  if (a.is_cuda()) cuda::binary_scalar_forward(op, a.data(), s, scalar_first, out.data(), a.numel());
  else cpu::binary_scalar_forward(op, a.data(), s, scalar_first, out.data(), a.numel());

  if (any_requires_grad({&a})) {
    Tensor a_ = a.detach();
    record(out, name, {a}, [op, a_, s, scalar_first](const Tensor& g, const std::vector<bool>&) {
      switch (op) {
        case BinaryOp::Add: return Grads{g};
        case BinaryOp::Sub: return Grads{scalar_first ? neg(g) : g};
        case BinaryOp::Mul: return Grads{mul(g, s)};
        case BinaryOp::Div:  // a / s -> 1/s;  s / a -> -s / a^2
          return Grads{scalar_first ? mul(div(g, mul(a_, a_)), -s) : div(g, s)};
        case BinaryOp::Eq:
          break;
      }
      return Grads{Tensor()};
    });
  }
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Div, a, b); }
Tensor add(const Tensor& a, float s) { return binary_scalar(BinaryOp::Add, a, s, false); }
Tensor sub(const Tensor& a, float s) { return binary_scalar(BinaryOp::Sub, a, s, false); }
Tensor mul(const Tensor& a, float s) { return binary_scalar(BinaryOp::Mul, a, s, false); }
Tensor div(const Tensor& a, float s) { return binary_scalar(BinaryOp::Div, a, s, false); }
Tensor rsub(float s, const Tensor& a) { return binary_scalar(BinaryOp::Sub, a, s, true); }
Tensor rdiv(float s, const Tensor& a) { return binary_scalar(BinaryOp::Div, a, s, true); }
Tensor eq(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Eq, a, b); }

Tensor sum_to(const Tensor& x, const Shape& shape) {
  MSMIX_OP_RANGE("sum_to");
  if (x.shape() == shape) return x;
  int64_t rank = x.dim(), lead = rank - int64_t(shape.size());
  MSMIX_CHECK(lead >= 0, "sum_to: cannot reduce {} to {}", describe(x), shape_str(shape));
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < rank; ++d) {
    if (d < lead) {
      dims.push_back(d);
      continue;
    }
    int64_t want = shape[d - lead];
    MSMIX_CHECK(want == x.size(d) || want == 1, "sum_to: cannot reduce {} to {}", describe(x), shape_str(shape));
    if (want == 1 && x.size(d) != 1) dims.push_back(d);
  }
  Tensor reduced = dims.empty() ? x : sum(x, dims, true);
  return reshape(reduced, shape);
}

}  // namespace msmix
