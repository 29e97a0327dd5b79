#include "msmix/info.h"

#include <cblas.h>
#include <omp.h>

#include "engine/blas_kernels.h"
#include "engine/cuda_runtime.h"
#include "engine/error.h"

namespace msmix {

std::string build_info() {
  std::string out;
  out += fmt::format("msmix: {} ({})\n", MSMIX_VERSION, MSMIX_GIT_REV);
  out += fmt::format("build: {}, g++ {}\n", MSMIX_BUILD_FLAGS, __VERSION__);
  out += fmt::format("cpu threads: {} (OpenMP)\n", omp_get_max_threads());
  out += fmt::format("blas: {}; kernels {}; {} threads\n", openblas_get_config(), choose_blas_kernels(),
                     openblas_get_num_threads());
  out += fmt::format("cuda: {}\n", cuda::compiled() ? "compiled in, " + cuda::runtime_info() : "not compiled in");
  int gpus = cuda::device_count();
  if (gpus == 0) out += "gpus: none found\n";
  for (int i = 0; i < gpus; ++i) out += fmt::format("gpu {}: {}\n", i, cuda::device_name(i));
  return out;
}

}  // namespace msmix
