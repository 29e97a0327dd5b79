// Matrix products through cuBLAS (FP32, no TF32: CUBLAS_DEFAULT_MATH), with the CPU twin's GemmBatch contract
// (ops/cpu/matmul.h), and linear's two row kernels.
// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: cuBLAS is called with the operands swapped
// and each row-major matrix read as its column-major transpose, so nothing is copied. A batch is one
// cublasSgemmStridedBatched (stride 0 for a shared operand); a shared B with untransposed A folds into one
// taller GEMM; a summed C (stride_c 0) is a K-stacked GEMM when the layout allows (the CPU twin's two folds),
// else a strided batch into scratch reduced over the batch by reduce_dim.
// broadcast_rows: one thread per element of y, grid-stride. sum_rows: reduce_dim over [1, R, N].
// Bound: GEMMs compute (cuBLAS); row kernels memory.
#include <cublas_v2.h>

#include "engine/cuda_runtime.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/kernels.h"

// CUBLAS_CHECK(call): throws msmix::Error naming the call, file:line and cuBLAS's status string.
#define CUBLAS_CHECK(call)                                                                              \
  do {                                                                                                  \
    cublasStatus_t st_ = (call);                                                                        \
    if (st_ != CUBLAS_STATUS_SUCCESS)                                                                   \
      throw ::msmix::Error(fmt::format("{} failed at {}:{}: {} ({})", #call, __FILE__, __LINE__,         \
                                       cublasGetStatusString(st_), int(st_)));                          \
  } while (0)

namespace msmix::cuda {
namespace {

// One handle for the process, on the engine's stream, created at the first GEMM (so a build without a GPU
// never touches cuBLAS). Never destroyed: the CUDA context may be gone at exit.
cublasHandle_t handle() {
  static cublasHandle_t h = [] {
    cublasHandle_t made = nullptr;
    CUBLAS_CHECK(cublasCreate(&made));
    CUBLAS_CHECK(cublasSetMathMode(made, CUBLAS_DEFAULT_MATH));
    CUBLAS_CHECK(cublasSetStream(made, cudaStreamPerThread));  // the engine's one stream (see the Makefile)
    return made;
  }();
  return h;
}

// `batch` row-major products C_i = op(A_i) op(B_i) + beta C_i, as column-major C_i^T = op(B_i)^T op(A_i)^T.
// Leading dims are the stored row lengths (at least 1, as BLAS requires); the op layer checked that M, N, K
// and the folded sizes fit an int.
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* a, int64_t stride_a,
           const float* b, int64_t stride_b, float beta, float* c, int64_t stride_c, int64_t batch) {
  const float alpha = 1.0f;
  const int lda = int(std::max<int64_t>(1, trans_a ? M : K));
  const int ldb = int(std::max<int64_t>(1, trans_b ? K : N));
  const int ldc = int(std::max<int64_t>(1, N));
  const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  count_queued();
  if (batch == 1) {
    CUBLAS_CHECK(cublasSgemm(handle(), op_b, op_a, int(N), int(M), int(K), &alpha, b, ldb, a, lda, &beta, c, ldc));
  } else {
    CUBLAS_CHECK(cublasSgemmStridedBatched(handle(), op_b, op_a, int(N), int(M), int(K), &alpha, b, ldb, stride_b, a,
                                           lda, stride_a, &beta, c, ldc, stride_c, int(batch)));
  }
}

// One block row per matrix row (grid-stride over rows), threads across its N columns: no division per element.
__global__ void broadcast_rows_kernel(const float* bias, float* y, int64_t R, int64_t N) {
  for (int64_t r = blockIdx.x; r < R; r += gridDim.x)
    for (int64_t c = threadIdx.x; c < N; c += blockDim.x) y[r * N + c] = bias[c];
}

}  // namespace

void gemm_batched(const cpu::GemmBatch& g) {
  const int64_t M = g.M, N = g.N, K = g.K;
  const int64_t c_count = g.stride_c == 0 ? 1 : g.batch;
  if (M == 0 || N == 0) return;
  if (K == 0 || g.batch == 0) {  // every product is the zero matrix
    if (!g.accumulate)
      for (int64_t i = 0; i < c_count; ++i) memset_zero(g.c + i * g.stride_c, size_t(M * N) * sizeof(float));
    return;
  }
  const float beta = g.accumulate ? 1.0f : 0.0f;
  if (g.stride_c != 0 || g.batch == 1) {
    // Shared B, untransposed A, consecutive A_i and C_i: one [batch * M, K] @ op(B) product.
    if (g.batch > 1 && g.stride_b == 0 && !g.trans_a && g.stride_a == M * K && g.stride_c == M * N) {
      sgemm(false, g.trans_b, g.batch * M, N, K, g.a, 0, g.b, 0, beta, g.c, 0, 1);
      return;
    }
    sgemm(g.trans_a, g.trans_b, M, N, K, g.a, g.stride_a, g.b, g.stride_b, beta, g.c, g.stride_c, g.batch);
    return;
  }
  // Summed C. A_i stored [K, M] and B_i stored [K, N], consecutive: sum_i A_i^T B_i = one product over the
  // stacked [batch * K, M]^T @ [batch * K, N].
  if (g.trans_a && !g.trans_b && g.stride_a == K * M && g.stride_b == K * N) {
    sgemm(true, false, M, N, g.batch * K, g.a, 0, g.b, 0, beta, g.c, 0, 1);
    return;
  }
  // Otherwise the batch's products into scratch [batch, M, N], then summed over the batch.
  DeviceBuffer products(size_t(g.batch * M * N));
  sgemm(g.trans_a, g.trans_b, M, N, K, g.a, g.stride_a, g.b, g.stride_b, 0.0f, products.get(), M * N, g.batch);
  if (!g.accumulate) {
    reduce_dim(ReduceOp::Sum, products.get(), g.c, 1, g.batch, M * N);
    return;
  }
  DeviceBuffer total(size_t(M * N));
  reduce_dim(ReduceOp::Sum, products.get(), total.get(), 1, g.batch, M * N);
  add_inplace(g.c, total.get(), size_t(M * N));
}

void broadcast_rows(const float* bias, float* y, int64_t R, int64_t N) {
  if (R * N == 0) return;
  broadcast_rows_kernel<<<unsigned(std::min<int64_t>(R, kMaxBlocks)), kThreads>>>(bias, y, R, N);
  CUDA_CHECK_LAUNCH("broadcast_rows_kernel");
}

void sum_rows(const float* g, float* gbias, int64_t R, int64_t N) { reduce_dim(ReduceOp::Sum, g, gbias, 1, R, N); }

}  // namespace msmix::cuda
