// Which GEMM kernels OpenBLAS runs. Debian's OpenBLAS is a DYNAMIC_ARCH build: at load time it picks a kernel
// set from the CPU model. OpenBLAS 0.3.21 (Debian 12) does not know newer Xeons (Sapphire Rapids, as on the
// project's VMs) and falls back to Prescott's SSE3 kernels, leaving sgemm about 3x below what the CPU does.
// choose_blas_kernels() runs once at start-up (before main, see engine/tensor.cpp): when OpenBLAS chose a core
// without AVX2 although the CPU and the OS support AVX-512 (or AVX2 + FMA), it re-initialises OpenBLAS with its
// SkylakeX (or Haswell) kernels. A user's OPENBLAS_CORETYPE is respected; MSMIX_BLAS_KEEP_CORE=1 keeps
// OpenBLAS's own choice (for comparisons).
#pragma once

#include <string>

namespace msmix {

// Idempotent; returns what happened, e.g. "SkylakeX (OpenBLAS detected Prescott on an AVX-512 CPU)".
const std::string& choose_blas_kernels();

}  // namespace msmix
