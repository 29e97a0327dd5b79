// The AVX2 + FMA build of the vectorised kernels. Compiled with -mavx2 -mfma (see the Makefile): reached only
// through vec_kernels() after a run-time CPU check (fast_math.cpp). Nothing else may live here: any inline
// function defined in this file could be merged by the linker into baseline callers.
#include "ops/cpu/fast_gelu_impl.h"
#include "ops/cpu/row_kernels_impl.h"
#include "ops/cpu/vec_kernels.h"

namespace msmix::cpu {
namespace {

typedef float Vec8 __attribute__((vector_size(32)));
typedef int32_t IVec8 __attribute__((vector_size(32)));

}  // namespace

extern const VecKernels kVecKernelsAvx2;
const VecKernels kVecKernelsAvx2 = {
    "avx2",
    exp_shift_sum_vec<Vec8, IVec8>,
    sum_vec<Vec8>,
    add_into_vec<Vec8>,
    binary_vec<Vec8, '+'>,
    binary_vec<Vec8, '-'>,
    binary_vec<Vec8, '*'>,
    binary_vec<Vec8, '/'>,
    layer_norm_row_vec<Vec8>,
    layer_norm_row_backward_vec<Vec8>,
    gelu_vec<Vec8, IVec8>,
    gelu_backward_vec<Vec8, IVec8>,
    softmax_row_vec<Vec8, IVec8>,
    softmax_row_backward_vec<Vec8, IVec8>,
};

}  // namespace msmix::cpu
