// OpenBLAS kernel choice (engine/blas_kernels.h): on a CPU with AVX2 + FMA, GEMM must not run on a pre-AVX2
// kernel set, and the re-initialised kernels must still compute the right product.
#include <cblas.h>
#include <doctest/doctest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "engine/blas_kernels.h"
#include "engine/random.h"
#include "engine/tensor.h"

using namespace msmix;

TEST_CASE("blas kernels: an AVX2 CPU gets AVX2 kernels unless the user chose otherwise") {
  const std::string what = choose_blas_kernels();
  MESSAGE("OpenBLAS kernels: " << what);
  CHECK(choose_blas_kernels() == what);  // idempotent
  const bool user_choice = std::getenv("OPENBLAS_CORETYPE") || std::getenv("MSMIX_BLAS_KEEP_CORE");
  if (!user_choice && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    const std::string core = openblas_get_corename();
    bool avx2_core = false;
    for (const char* name : {"Haswell", "SkylakeX", "Cooperlake", "SapphireRapids", "Zen", "Excavator"})
      avx2_core |= core == name;
    CHECK_MESSAGE(avx2_core, "OpenBLAS runs its " << core << " kernels on an AVX2 CPU");
  }
}

TEST_CASE("blas kernels: sgemm on the chosen kernels equals a double-precision triple loop") {
  const int M = 67, K = 129, N = 45;  // odd sizes: edge tiles of every kernel
  Generator gen(7);
  Tensor a = Tensor::randn({M, K}, gen), b = Tensor::randn({K, N}, gen);
  std::vector<float> c(size_t(M) * N);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a.data(), K, b.data(), N, 0.0f, c.data(), N);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double ref = 0;
      for (int k = 0; k < K; ++k) ref += double(a.data()[i * K + k]) * b.data()[k * N + j];
      CHECK(c[size_t(i) * N + j] == doctest::Approx(ref).epsilon(1e-4));
    }
}
