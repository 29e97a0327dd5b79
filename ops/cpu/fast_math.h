// Vectorised CPU kernels picked at run time. glibc's vector expf is only declared under -ffast-math, and GCC
// will not vectorise a clamped polynomial or a float sum it may not reassociate, so the kernels are written
// with GCC's vector extensions, once for any width (ops/cpu/fast_exp_impl.h, ops/cpu/row_kernels_impl.h).
// Calls go to an AVX2 + FMA build (8 lanes, ops/cpu/fast_math_avx2.cpp) when the CPU has both, else to the
// SSE2 build (4 lanes, baseline x86-64); -march=native is not needed.
#pragma once
#include <cstdint>

#include "ops/cpu/fast_exp_impl.h"
#include "ops/cpu/vec_kernels.h"

namespace msmix::cpu {

typedef float Vec4 __attribute__((vector_size(16)));
typedef int32_t IVec4 __attribute__((vector_size(16)));

inline Vec4 fast_exp4(Vec4 x) { return fast_exp_vec<Vec4, IVec4>(x); }

inline float fast_exp(float x) { return fast_exp4(Vec4{} + x)[0]; }

// y[i] = exp(x[i] + shift) for i < n; returns the sum of the y[i].
inline double exp_shift_sum(const float* x, float* y, int64_t n, float shift) {
  return vec_kernels().exp_shift_sum(x, y, n, shift);
}
// y[i] = exp(x[i]) for i < n.
inline void exp_array(const float* x, float* y, int64_t n) { exp_shift_sum(x, y, n, 0.0f); }

}  // namespace msmix::cpu
