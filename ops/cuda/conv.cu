// conv1d (stride 1, zero padding) as im2col + one cuBLAS GEMM per chunk of samples, laid out exactly as the
// CPU twin (ops/cpu/conv.cpp): cols [Cin * K, m * Lout] with cols[ci * K + k, j * Lout + t] =
// x[n0 + j, ci, t + k - padding] (0 in the padding); out [Cout, m * Lout] = weight [Cout, Cin * K] @ cols, then
// scattered to y [N, Cout, Lout] with the bias added. Backward: gy gathered to gyc [Cout, m * Lout];
// gweight (+)= gyc @ cols^T; dcols = weight^T @ gyc; col2im sums dcols back onto gx, one thread per gx
// element adding its K taps in the CPU's order (no atomics); gbias sums gy per channel in double, one block
// per channel. Launch: copies one thread per element, grid-stride. Bound: the GEMMs (compute).
// MSMIX_CUDA_CONV=cudnn sends x, y and the weight's grad through cuDNN instead (conv_cudnn.cu); the bias
// (add_bias_kernel, after cuDNN's forward) and its grad stay here.
#include <algorithm>

#include "engine/cuda_runtime.h"
#include "engine/env_choice.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/kernels.h"

namespace msmix::cuda {
namespace {

using cpu::Conv1dShape;
constexpr int64_t kColsMax = 1 << 24;  // floats in one im2col buffer (64 MiB): bounds the scratch memory
constexpr int kBlock = 256;

int64_t chunk_samples(const Conv1dShape& s) {
  return std::max<int64_t>(1, std::min(s.N, kColsMax / std::max<int64_t>(1, s.Cin * s.K * s.Lout)));
}

__global__ void im2col_kernel(const float* x, float* cols, Conv1dShape s, int64_t n0, int64_t width, int64_t n) {
  MSMIX_GRID_LOOP(i, n) {
    const int64_t row = i / width, col = i - row * width;  // row = ci * K + k, col = j * Lout + t
    const int64_t ci = row / s.K, k = row - ci * s.K, j = col / s.Lout, t = col - j * s.Lout;
    const int64_t pos = t + k - s.padding;
    cols[i] = pos >= 0 && pos < s.L ? x[((n0 + j) * s.Cin + ci) * s.L + pos] : 0.0f;
  }
}

// out [Cout, width] -> y[n0 + j, co, t] = out[co, j * Lout + t] + bias[co].
__global__ void scatter_out_kernel(const float* out, const float* bias, float* y, Conv1dShape s, int64_t n0,
                                   int64_t width, int64_t n) {
  MSMIX_GRID_LOOP(i, n) {  // i over y's chunk [m, Cout, Lout]
    const int64_t t = i % s.Lout, r = i / s.Lout, co = r % s.Cout, j = r / s.Cout;
    y[n0 * s.Cout * s.Lout + i] = out[co * width + j * s.Lout + t] + (bias ? bias[co] : 0.0f);
  }
}

// gy's chunk [m, Cout, Lout] -> gyc [Cout, width].
__global__ void gather_gy_kernel(const float* gy, float* gyc, Conv1dShape s, int64_t n0, int64_t width, int64_t n) {
  MSMIX_GRID_LOOP(i, n) {
    const int64_t t = i % s.Lout, r = i / s.Lout, co = r % s.Cout, j = r / s.Cout;
    gyc[co * width + j * s.Lout + t] = gy[n0 * s.Cout * s.Lout + i];
  }
}

// gx[n0 + j, ci, p] = sum over k (ascending) of dcols[ci * K + k, j * Lout + p + padding - k] where in range.
__global__ void col2im_kernel(const float* dcols, float* gx, Conv1dShape s, int64_t n0, int64_t width, int64_t n) {
  MSMIX_GRID_LOOP(i, n) {  // i over gx's chunk [m, Cin, L]
    const int64_t p = i % s.L, r = i / s.L, ci = r % s.Cin, j = r / s.Cin;
    float acc = 0;
    for (int64_t k = 0; k < s.K; ++k) {
      const int64_t t = p + s.padding - k;
      if (t >= 0 && t < s.Lout) acc += dcols[(ci * s.K + k) * width + j * s.Lout + t];
    }
    gx[n0 * s.Cin * s.L + i] = acc;
  }
}

// y [N, Cout, Lout] += bias[co] (after cuDNN's convolution, which adds none).
__global__ void add_bias_kernel(float* y, const float* bias, Conv1dShape s, int64_t n) {
  MSMIX_GRID_LOOP(i, n) { y[i] += bias[(i / s.Lout) % s.Cout]; }
}

int g_conv_kernel = -1;  // a ConvKernel; -1: not yet read from the environment

bool use_cudnn(const Conv1dShape& s) { return conv_kernel() == ConvKernel::cudnn && cudnn_conv_fits(s); }

__global__ void bias_grad_kernel(const float* gy, float* gbias, Conv1dShape s) {
  __shared__ double scratch[kBlock / 32];
  const int64_t M = s.N * s.Lout;
  for (int64_t co = blockIdx.x; co < s.Cout; co += gridDim.x) {
    double acc = 0;
    for (int64_t i = threadIdx.x; i < M; i += kBlock) {
      const int64_t n = i / s.Lout, t = i - n * s.Lout;
      acc += gy[(n * s.Cout + co) * s.Lout + t];
    }
    acc = group_reduce<kBlock>(acc, SumOp(), scratch);
    if (threadIdx.x == 0) gbias[co] = float(acc);
  }
}

}  // namespace

ConvKernel conv_kernel() {
  if (g_conv_kernel < 0) set_conv_kernel(ConvKernel(env_choice("MSMIX_CUDA_CONV", {"im2col", "cudnn"})));
  return ConvKernel(g_conv_kernel);
}
void set_conv_kernel(ConvKernel kernel) {
  if (kernel == ConvKernel::cudnn) require_cudnn("MSMIX_CUDA_CONV=cudnn", "im2col");
  g_conv_kernel = int(kernel);
}
const char* conv_kernel_name(ConvKernel kernel) {
  switch (kernel) {
    case ConvKernel::im2col: return "im2col";
    case ConvKernel::cudnn: return "cudnn";
  }
  return "?";
}

void conv1d_forward(const float* x, const float* weight, const float* bias, float* y, const Conv1dShape& s) {
  if (s.N == 0 || s.Cout == 0) return;
  if (use_cudnn(s)) {
    cudnn_conv1d_forward(x, weight, y, s);
    if (bias) {
      const int64_t n = s.N * s.Cout * s.Lout;
      add_bias_kernel<<<blocks_for(n), kThreads>>>(y, bias, s, n);
      CUDA_CHECK_LAUNCH("conv1d add_bias_kernel");
    }
    return;
  }
  const int64_t CK = s.Cin * s.K, nb = chunk_samples(s);
  DeviceBuffer cols(size_t(CK * nb * s.Lout)), out(size_t(s.Cout * nb * s.Lout));
  for (int64_t n0 = 0; n0 < s.N; n0 += nb) {
    const int64_t m = std::min(nb, s.N - n0), width = m * s.Lout;
    im2col_kernel<<<blocks_for(CK * width), kThreads>>>(x, cols.get(), s, n0, width, CK * width);
    CUDA_CHECK_LAUNCH("conv1d im2col_kernel");
    cpu::GemmBatch gemm;
    gemm.a = weight, gemm.b = cols.get(), gemm.c = out.get();
    gemm.M = s.Cout, gemm.N = width, gemm.K = CK;
    cuda::gemm_batched(gemm);
    scatter_out_kernel<<<blocks_for(s.Cout * width), kThreads>>>(out.get(), bias, y, s, n0, width, s.Cout * width);
    CUDA_CHECK_LAUNCH("conv1d scatter_out_kernel");
  }
}

void conv1d_backward(const float* x, const float* weight, const float* gy, float* gx, float* gweight, float* gbias,
                     const Conv1dShape& s) {
  const int64_t CK = s.Cin * s.K;
  if (gbias && s.Cout > 0) {
    bias_grad_kernel<<<blocks_for(s.Cout, 1), kBlock>>>(gy, gbias, s);
    CUDA_CHECK_LAUNCH("conv1d bias_grad_kernel");
  }
  if (s.N == 0 || s.Cout == 0) {  // nothing flows back: zero grads (and no zero-sized GEMMs)
    if (gx) memset_zero(gx, size_t(s.N * s.Cin * s.L) * sizeof(float));
    if (gweight) memset_zero(gweight, size_t(s.Cout * CK) * sizeof(float));
    return;
  }
  if (!gx && !gweight) return;
  if (use_cudnn(s)) return cudnn_conv1d_backward(x, weight, gy, gx, gweight, s);
  const int64_t nb = chunk_samples(s);
  DeviceBuffer cols(size_t(CK * nb * s.Lout)), gyc(size_t(s.Cout * nb * s.Lout));
  for (int64_t n0 = 0; n0 < s.N; n0 += nb) {
    const int64_t m = std::min(nb, s.N - n0), width = m * s.Lout;
    gather_gy_kernel<<<blocks_for(s.Cout * width), kThreads>>>(gy, gyc.get(), s, n0, width, s.Cout * width);
    CUDA_CHECK_LAUNCH("conv1d gather_gy_kernel");
    if (gweight) {  // gweight [Cout, CK] (+)= gyc @ cols^T; the first chunk overwrites
      im2col_kernel<<<blocks_for(CK * width), kThreads>>>(x, cols.get(), s, n0, width, CK * width);
      CUDA_CHECK_LAUNCH("conv1d im2col_kernel");
      cpu::GemmBatch gemm;
      gemm.a = gyc.get(), gemm.b = cols.get(), gemm.c = gweight;
      gemm.M = s.Cout, gemm.N = CK, gemm.K = width, gemm.trans_b = true, gemm.accumulate = n0 > 0;
      cuda::gemm_batched(gemm);
    }
    if (gx) {  // dcols [CK, width] = weight^T @ gyc, reusing the cols buffer; then col2im
      cpu::GemmBatch gemm;
      gemm.a = weight, gemm.b = gyc.get(), gemm.c = cols.get();
      gemm.M = CK, gemm.N = width, gemm.K = s.Cout, gemm.trans_a = true;
      cuda::gemm_batched(gemm);
      col2im_kernel<<<blocks_for(m * s.Cin * s.L), kThreads>>>(cols.get(), gx, s, n0, width, m * s.Cin * s.L);
      CUDA_CHECK_LAUNCH("conv1d col2im_kernel");
    }
  }
}

}  // namespace msmix::cuda
