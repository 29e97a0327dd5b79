// Vectorised expf for the CPU kernels. glibc's vector expf is only declared under -ffast-math, and GCC will
// not vectorise a clamped polynomial by itself (it threads the clamp into branches), so the kernel
// (ops/cpu/fast_exp_impl.h) is written with GCC's vector extensions. Array calls pick an AVX2 + FMA build of
// it at run time when the CPU has them (8 lanes), else SSE2 (4 lanes, baseline x86-64).
#pragma once
#include <cstdint>

#include "ops/cpu/fast_exp_impl.h"

namespace msmix::cpu {

typedef float Vec4 __attribute__((vector_size(16)));
typedef int32_t IVec4 __attribute__((vector_size(16)));

inline Vec4 fast_exp4(Vec4 x) { return fast_exp_vec<Vec4, IVec4>(x); }

inline float fast_exp(float x) { return fast_exp4(Vec4{} + x)[0]; }

// y[i] = exp(x[i] + shift) for i < n; returns the sum of the y[i] (double accumulation of lane sums).
double exp_shift_sum(const float* x, float* y, int64_t n, float shift);
// y[i] = exp(x[i]) for i < n.
inline void exp_array(const float* x, float* y, int64_t n) { exp_shift_sum(x, y, n, 0.0f); }

// The AVX2 + FMA build (ops/cpu/fast_math_avx2.cpp); call only when the CPU supports both.
double exp_shift_sum_avx2(const float* x, float* y, int64_t n, float shift);

}  // namespace msmix::cpu
