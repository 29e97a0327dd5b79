// CPU matrix products: a batched sgemm driver over cblas_sgemm (OpenBLAS), its naive triple-loop twin (the
// test reference), and the small row kernels that linear needs around its GEMM.
#pragma once
#include <cstdint>

namespace msmix::cpu {

// A batch of C_i = op(A_i) @ op(B_i), with op(A_i) [M, K], op(B_i) [K, N], C_i [M, N], all row-major.
// trans_a: A_i is stored [K, M] (op = transpose), else [M, K]; likewise trans_b: B_i stored [N, K] or [K, N].
// Operand i starts at a + i * stride_a (stride 0: one matrix shared by the whole batch), the same for b.
// stride_c 0 sums the batch into one C (the grad of a shared operand); otherwise C_i = a fresh product.
// accumulate: C += product instead of C = product. M, N, K or batch may be 0 (K = 0 gives C = 0).
struct GemmBatch {
  const float* a = nullptr;
  const float* b = nullptr;
  float* c = nullptr;
  int64_t batch = 1, M = 0, N = 0, K = 0;
  bool trans_a = false, trans_b = false;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;
  bool accumulate = false;
};

// Through cblas_sgemm: one call when the batch folds into a single GEMM (a shared B with untransposed A
// stacks the batch along M; a summed C with trans_a and untransposed B stacks it along K), else one per item.
void gemm_batched(const GemmBatch& g);
// The same contract with plain loops and double accumulation: slow, obviously right.
void gemm_batched_naive(const GemmBatch& g);

// Each of R rows of y [R, N] = bias [N] (the beta = 1 preload before linear's GEMM).
void broadcast_rows(const float* bias, float* y, int64_t R, int64_t N);
// gbias [N] = sum over the R rows of g [R, N] (linear's bias grad).
void sum_rows(const float* g, float* gbias, int64_t R, int64_t N);

}  // namespace msmix::cpu
