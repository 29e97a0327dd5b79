#include "engine/cpu_flags.h"

#include <omp.h>
#include <xmmintrin.h>

namespace msmix {

static void apply(bool on) {
  const unsigned kFtzDaz = 0x8040;  // MXCSR bits 15 (flush to zero) and 6 (denormals are zero)
  unsigned csr = _mm_getcsr();
  _mm_setcsr(on ? (csr | kFtzDaz) : (csr & ~kFtzDaz));
}

void set_flush_denormal(bool on) {
  apply(on);
  // MXCSR is per thread: set it on each worker of the pool (the pool persists between parallel regions).
#pragma omp parallel
  apply(on);
}

}  // namespace msmix
