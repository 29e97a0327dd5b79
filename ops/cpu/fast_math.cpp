// The SSE2 build of the vectorised kernels, and the run-time choice between it and the AVX2 build.
#include "ops/cpu/fast_math.h"

#include "ops/cpu/fast_gelu_impl.h"
#include "ops/cpu/row_kernels_impl.h"

namespace msmix::cpu {

// Defined in fast_math_avx2.cpp (compiled with -mavx2 -mfma); only read after the CPU check below.
extern const VecKernels kVecKernelsAvx2;

namespace {

const VecKernels kSse2 = {
    "sse2",
    [](const float* x, float* y, int64_t n, float shift) { return exp_shift_sum_vec<Vec4, IVec4>(x, y, n, shift); },
    sum_vec<Vec4>,
    add_into_vec<Vec4>,
    binary_vec<Vec4, '+'>,
    binary_vec<Vec4, '-'>,
    binary_vec<Vec4, '*'>,
    binary_vec<Vec4, '/'>,
    layer_norm_row_vec<Vec4>,
    layer_norm_row_backward_vec<Vec4>,
    gelu_vec<Vec4, IVec4>,
    gelu_backward_vec<Vec4, IVec4>,
    softmax_row_vec<Vec4, IVec4>,
    softmax_row_backward_vec<Vec4, IVec4>,
};

const bool kHasAvx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");

}  // namespace

const VecKernels& vec_kernels_sse2() { return kSse2; }
const VecKernels* vec_kernels_avx2() { return kHasAvx2 ? &kVecKernelsAvx2 : nullptr; }
const VecKernels& vec_kernels() { return kHasAvx2 ? kVecKernelsAvx2 : kSse2; }

}  // namespace msmix::cpu
