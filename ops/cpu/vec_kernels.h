// The table of vectorised CPU kernels, one per instruction-set build (SSE2 in fast_math.cpp, AVX2 + FMA in
// fast_math_avx2.cpp). Declarations only: the AVX2 object includes this and nothing with inline code.
#pragma once
#include <cstdint>

namespace msmix::cpu {

// One build of the vectorised kernels. Row pointers need no alignment.
struct VecKernels {
  const char* name;  // "sse2" or "avx2"
  // y[i] = exp(x[i] + shift) for i < n; returns the sum of the y[i] (lane sums added in double).
  double (*exp_shift_sum)(const float* x, float* y, int64_t n, float shift);
  // Blocked float sum of x[0, n) (error < 2.2e-6 of sum |x[i]| for any n; see vec_impl.h).
  double (*sum)(const float* x, int64_t n);
  // dst[i] += src[i] for i < n.
  void (*add_into)(float* dst, const float* src, int64_t n);
  // out[i] = a[i] op b[i] for i < n (out may be a or b).
  void (*add)(const float* a, const float* b, float* out, int64_t n);
  void (*sub)(const float* a, const float* b, float* out, int64_t n);
  void (*mul)(const float* a, const float* b, float* out, int64_t n);
  void (*div)(const float* a, const float* b, float* out, int64_t n);
  // One row of layer norm / its backward (row_kernels_impl.h).
  void (*layer_norm_row)(const float* x, const float* weight, const float* bias, float* y, int64_t C, float eps,
                         float* mean, float* rstd);
  void (*layer_norm_row_backward)(const float* x, const float* weight, float mean, float rstd, const float* g,
                                  float* gx, float* pw, float* pb, int64_t C);
  // y = gelu(x) (exact, erf-based) / gx = g * gelu'(x), for i < n (fast_gelu_impl.h).
  void (*gelu)(const float* x, float* y, int64_t n);
  void (*gelu_backward)(const float* x, const float* g, float* gx, int64_t n);
  // One row of softmax (log: log_softmax) / its backward from the output y.
  void (*softmax_row)(const float* x, float* y, int64_t C, bool log);
  void (*softmax_row_backward)(const float* y, const float* g, float* gx, int64_t C, bool log);
};

const VecKernels& vec_kernels_sse2();
// Null when the CPU lacks AVX2 or FMA.
const VecKernels* vec_kernels_avx2();
// The widest build this CPU runs: AVX2 when it has it.
const VecKernels& vec_kernels();

}  // namespace msmix::cpu
