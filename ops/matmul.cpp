// matmul and linear through cblas_sgemm. Transposes are BLAS flags, never copies; a 2-D operand shared across
// a batch is one matrix (stride 0), and its grad is the batch's products summed by the same GEMM driver.
#include <climits>

#include "engine/error.h"
#include "engine/profile.h"
#include "ops/cpu/matmul.h"
#include "ops/cuda/kernels.h"
#include "ops/ops.h"

namespace msmix {
namespace {

std::string operand_str(const Tensor& t, bool trans) { return shape_str(t.shape()) + (trans ? "^T" : ""); }

// cblas_sgemm takes int sizes; the folded GEMMs multiply a size by the batch.
void check_fits_int(const char* op, const std::string& what, std::initializer_list<int64_t> sizes) {
  for (int64_t s : sizes) MSMIX_CHECK(s <= INT_MAX, "{}: {} is too large for BLAS (a size exceeds 2^31 - 1)", op, what);
}

// op(x) [..., M, K] @ op(y) [..., K, N] for operands already checked by matmul (equal batch dims, or one
// side 2-D). sum_batch: add the batch's products into one [M, N] (the grad of a shared 2-D operand);
// otherwise the result is [batch..., M, N].
Tensor product(const Tensor& x, bool trans_x, const Tensor& y, bool trans_y, bool sum_batch) {
  const int64_t M = trans_x ? x.size(-1) : x.size(-2), K = trans_x ? x.size(-2) : x.size(-1);
  const int64_t N = trans_y ? y.size(-2) : y.size(-1);
  const Tensor& batched = x.dim() > 2 ? x : y;
  Shape out_shape(batched.shape().begin(), batched.shape().end() - 2);
  cpu::GemmBatch g;
  g.batch = shape_numel(out_shape);
  g.M = M, g.N = N, g.K = K;
  g.trans_a = trans_x, g.trans_b = trans_y;
  g.stride_a = x.dim() > 2 ? M * K : 0;
  g.stride_b = y.dim() > 2 ? K * N : 0;
  g.stride_c = sum_batch ? 0 : M * N;
  if (sum_batch) out_shape.clear();
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor out = Tensor::empty(out_shape, x.device());
  g.a = x.data(), g.b = y.data(), g.c = out.data();
  if (x.is_cuda()) cuda::gemm_batched(g);
  else cpu::gemm_batched(g);
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  MSMIX_OP_RANGE("matmul");
  MSMIX_CHECK(a.defined() && b.defined(), "matmul: undefined input");
  MSMIX_CHECK(a.dim() >= 2 && b.dim() >= 2, "matmul: expected operands with at least 2 dims, got {} @ {}",
              operand_str(a, trans_a), operand_str(b, trans_b));
  const int64_t Ka = trans_a ? a.size(-2) : a.size(-1), Kb = trans_b ? b.size(-1) : b.size(-2);
  MSMIX_CHECK(Ka == Kb, "matmul: inner dims differ: {} @ {}", operand_str(a, trans_a), operand_str(b, trans_b));
  const Shape batch_a(a.shape().begin(), a.shape().end() - 2), batch_b(b.shape().begin(), b.shape().end() - 2);
  MSMIX_CHECK(a.dim() == 2 || b.dim() == 2 || batch_a == batch_b,
              "matmul: batch dims differ: {} @ {} (need equal batch dims, or one 2-D operand shared by the batch)",
              operand_str(a, trans_a), operand_str(b, trans_b));
  common_device("matmul", {&a, &b});
  const int64_t M = trans_a ? a.size(-1) : a.size(-2), N = trans_b ? b.size(-2) : b.size(-1);
  const int64_t batch = shape_numel(a.dim() > 2 ? batch_a : batch_b);
  check_fits_int("matmul", operand_str(a, trans_a) + " @ " + operand_str(b, trans_b),
                 {M, N, Ka, batch * M, batch * Ka});

  Tensor out = product(a, trans_a, b, trans_b, false);
  if (any_requires_grad({&a, &b})) {
    Tensor a_ = a.detach(), b_ = b.detach();
    record(out, "matmul", {a, b}, [a_, b_, trans_a, trans_b](const Tensor& g, const std::vector<bool>& needs) {
      // C = op(A) op(B): dop(A) = G op(B)^T and dop(B) = op(A)^T G; a transposed operand takes the
      // transpose of that, written as a product with swapped factors. A 2-D operand sums over the batch.
      Tensor ga, gb;
      if (needs[0])
        ga = trans_a ? product(b_, trans_b, g, true, a_.dim() == 2) : product(g, false, b_, !trans_b, a_.dim() == 2);
      if (needs[1])
        gb = trans_b ? product(g, true, a_, trans_a, b_.dim() == 2) : product(a_, !trans_a, g, false, b_.dim() == 2);
      return Grads{ga, gb};
    });
  }
  return out;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  MSMIX_OP_RANGE("linear");
  MSMIX_CHECK(x.defined() && weight.defined(), "linear: undefined input");
  MSMIX_CHECK(weight.dim() == 2, "linear: weight must be [out, in], got {}", describe(weight));
  MSMIX_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1),
              "linear: x {} does not end in the {} input features of weight {}", describe(x), weight.size(1),
              describe(weight));
  const int64_t out_features = weight.size(0), in_features = weight.size(1);
  MSMIX_CHECK(!bias.defined() || bias.shape() == Shape{out_features},
              "linear: bias {} does not match the {} output features of weight {}",
              bias.defined() ? describe(bias) : "", out_features, describe(weight));
  const Device dev = common_device("linear", {&x, &weight, &bias});
  Shape out_shape(x.shape().begin(), x.shape().end() - 1);
  const int64_t R = shape_numel(out_shape);  // x is R rows of in_features
  out_shape.push_back(out_features);
  check_fits_int("linear", describe(x) + " @ " + describe(weight) + "^T", {R, in_features, out_features});

  // y [R, out] = bias rows, then += x [R, in] @ W^T: one GEMM with beta = 1 adds the bias for free.
  Tensor y = Tensor::empty(out_shape, dev);
  cpu::GemmBatch fwd;
  fwd.a = x.data(), fwd.b = weight.data(), fwd.c = y.data();
  fwd.M = R, fwd.N = out_features, fwd.K = in_features;
  fwd.trans_b = true;
  fwd.accumulate = bias.defined();
  if (dev.is_cuda()) {
    if (bias.defined()) cuda::broadcast_rows(bias.data(), y.data(), R, out_features);
    cuda::gemm_batched(fwd);
  } else {
    if (bias.defined()) cpu::broadcast_rows(bias.data(), y.data(), R, out_features);
    cpu::gemm_batched(fwd);
  }

  if (any_requires_grad({&x, &weight, &bias})) {
    Tensor x_ = x.detach(), w_ = weight.detach();
    record(y, "linear", {x, weight, bias},
           [x_, w_, R, in_features, out_features](const Tensor& g, const std::vector<bool>& needs) {
             const bool gpu = g.is_cuda();  // the dispatch point of each kernel below
             Tensor gx, gw, gb;
             if (needs[0]) {  // gx [R, in] = G [R, out] @ W [out, in]
               gx = Tensor::empty(x_.shape(), g.device());
               cpu::GemmBatch d;
               d.a = g.data(), d.b = w_.data(), d.c = gx.data();
               d.M = R, d.N = in_features, d.K = out_features;
               gpu ? cuda::gemm_batched(d) : cpu::gemm_batched(d);
             }
             if (needs[1]) {  // gw [out, in] = G^T [out, R] @ X [R, in]: the sum over rows is the GEMM's K
               gw = Tensor::empty(w_.shape(), g.device());
               cpu::GemmBatch d;
               d.a = g.data(), d.b = x_.data(), d.c = gw.data();
               d.M = out_features, d.N = in_features, d.K = R;
               d.trans_a = true;
               gpu ? cuda::gemm_batched(d) : cpu::gemm_batched(d);
             }
             if (needs[2]) {  // gb [out] = column sums of G
               gb = Tensor::empty({out_features}, g.device());
               gpu ? cuda::sum_rows(g.data(), gb.data(), R, out_features)
                   : cpu::sum_rows(g.data(), gb.data(), R, out_features);
             }
             return Grads{gx, gw, gb};
           });
  }
  return y;
}

}  // namespace msmix
