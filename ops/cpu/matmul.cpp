#include "ops/cpu/matmul.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>

namespace msmix::cpu {
namespace {

constexpr int64_t kParallelMin = 1 << 15;  // elements below which threads cost more than they save
constexpr int64_t kColumnBlock = 256;      // sum_rows: columns per task (its partial sums stay in L1)

// One row-major C = op(A) @ op(B) + beta * C. Leading dims are the stored row lengths; BLAS wants them >= 1
// even for empty matrices. The op layer has checked that every size fits an int.
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* a, const float* b, float beta,
           float* c) {
  const int lda = int(std::max<int64_t>(1, trans_a ? M : K));
  const int ldb = int(std::max<int64_t>(1, trans_b ? K : N));
  const int ldc = int(std::max<int64_t>(1, N));
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, int(M), int(N),
              int(K), 1.0f, a, lda, b, ldb, beta, c, ldc);
}

// How many C matrices the batch writes: one when it is summed (stride_c 0).
int64_t c_count(const GemmBatch& g) { return g.stride_c == 0 ? 1 : g.batch; }

// M, N = 0: nothing to write. K = 0 or an empty batch: every product is the zero matrix. True when handled.
bool gemm_trivial(const GemmBatch& g) {
  if (g.M == 0 || g.N == 0) return true;
  if (g.K > 0 && g.batch > 0) return false;
  if (!g.accumulate)
    for (int64_t i = 0; i < c_count(g); ++i) std::fill_n(g.c + i * g.stride_c, g.M * g.N, 0.0f);
  return true;
}

}  // namespace

void gemm_batched(const GemmBatch& g) {
  if (gemm_trivial(g)) return;
  const float beta0 = g.accumulate ? 1.0f : 0.0f;
  // Shared B, untransposed A, fresh C_i: the A_i and C_i are consecutive row blocks of one
  // [batch * M, K] @ [K, N] -> [batch * M, N] product ([B, T, K] @ [K, N] is one GEMM over B * T rows).
  if (g.batch > 1 && g.stride_b == 0 && !g.trans_a && g.stride_a == g.M * g.K && g.stride_c == g.M * g.N) {
    sgemm(false, g.trans_b, g.batch * g.M, g.N, g.K, g.a, g.b, beta0, g.c);
    return;
  }
  // Summed C, A_i stored [K, M], B_i stored [K, N]: sum_i A_i^T B_i is one product over the stacked
  // [batch * K, M]^T @ [batch * K, N] (the grad of a shared weight).
  if (g.batch > 1 && g.stride_c == 0 && g.trans_a && !g.trans_b && g.stride_a == g.K * g.M && g.stride_b == g.K * g.N) {
    sgemm(true, false, g.M, g.N, g.batch * g.K, g.a, g.b, beta0, g.c);
    return;
  }
  for (int64_t i = 0; i < g.batch; ++i) {
    const float beta = (i > 0 && g.stride_c == 0) ? 1.0f : beta0;  // a summed C keeps earlier items
    sgemm(g.trans_a, g.trans_b, g.M, g.N, g.K, g.a + i * g.stride_a, g.b + i * g.stride_b, beta, g.c + i * g.stride_c);
  }
}

void gemm_batched_naive(const GemmBatch& g) {
  if (gemm_trivial(g)) return;
  const int64_t M = g.M, N = g.N, K = g.K;
  if (!g.accumulate)
    for (int64_t i = 0; i < c_count(g); ++i) std::fill_n(g.c + i * g.stride_c, M * N, 0.0f);
  for (int64_t i = 0; i < g.batch; ++i) {
    const float* a = g.a + i * g.stride_a;
    const float* b = g.b + i * g.stride_b;
    float* c = g.c + i * g.stride_c;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k) {
          const float av = g.trans_a ? a[k * M + m] : a[m * K + k];
          const float bv = g.trans_b ? b[n * K + k] : b[k * N + n];
          s += double(av) * double(bv);
        }
        c[m * N + n] += float(s);
      }
  }
}

void broadcast_rows(const float* bias, float* y, int64_t R, int64_t N) {
#pragma omp parallel for if (R * N > kParallelMin)
  for (int64_t r = 0; r < R; ++r) std::memcpy(y + r * N, bias, size_t(N) * sizeof(float));
}

void sum_rows(const float* g, float* gbias, int64_t R, int64_t N) {
  // Tasks own column blocks, so there is no race and the result does not depend on the thread count.
  const int64_t blocks = (N + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for if (R * N > kParallelMin)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t c0 = blk * kColumnBlock, width = std::min(kColumnBlock, N - c0);
    double acc[kColumnBlock] = {};
    for (int64_t r = 0; r < R; ++r) {
      const float* row = g + r * N + c0;
#pragma omp simd
      for (int64_t c = 0; c < width; ++c) acc[c] += row[c];
    }
    for (int64_t c = 0; c < width; ++c) gbias[c0 + c] = float(acc[c]);
  }
}

}  // namespace msmix::cpu
