// conv1d as a matrix product. For a chunk of m samples, im2col lays the input out as
//   cols [Cin * K, m * Lout], cols[ci * K + k, j * Lout + t] = x[n0 + j, ci, t + k - padding] (0 in the padding),
// so the forward is one GEMM  out [Cout, m * Lout] = weight [Cout, Cin * K] @ cols, then a scatter to
// y [N, Cout, Lout] that adds the bias. Backward: gweight += gy' @ cols^T and dcols = weight^T @ gy', where
// gy' is gy gathered to [Cout, m * Lout]; col2im adds dcols back onto gx. Compute-bound in the GEMMs; the
// copies around them are O(output).
#include "ops/cpu/conv.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>

#include "engine/allocator.h"

namespace msmix::cpu {
namespace {

constexpr int64_t kParallelMin = 1 << 14;
constexpr int64_t kColsMax = 1 << 22;  // floats in one im2col buffer (16 MiB): bounds the scratch memory

// A scratch buffer from the CPU caching allocator: no system allocation per call in a training loop.
struct Scratch {
  explicit Scratch(int64_t n)
      : bytes(size_t(std::max<int64_t>(n, 1)) * sizeof(float)),
        data(static_cast<float*>(allocate(Device::cpu(), bytes))) {}
  ~Scratch() { deallocate(Device::cpu(), data, bytes); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  size_t bytes;
  float* data;
};

// Output positions t whose input index t + k - padding falls inside [0, L): [lo, hi), possibly empty.
void valid_range(const Conv1dShape& s, int64_t k, int64_t& lo, int64_t& hi) {
  lo = std::min(s.Lout, std::max<int64_t>(0, s.padding - k));
  hi = std::max(lo, std::min(s.Lout, s.L + s.padding - k));
}

// Samples per chunk so that cols stays under kColsMax floats (at least one sample).
int64_t chunk_samples(const Conv1dShape& s) {
  return std::max<int64_t>(1, std::min(s.N, kColsMax / std::max<int64_t>(1, s.Cin * s.K * s.Lout)));
}

void im2col(const float* x, float* cols, const Conv1dShape& s, int64_t n0, int64_t m) {
  const int64_t width = m * s.Lout;
#pragma omp parallel for collapse(2) if (s.Cin * s.K * width > kParallelMin)
  for (int64_t ci = 0; ci < s.Cin; ++ci)
    for (int64_t k = 0; k < s.K; ++k) {
      int64_t lo, hi;
      valid_range(s, k, lo, hi);
      float* row = cols + (ci * s.K + k) * width;
      for (int64_t j = 0; j < m; ++j) {
        float* dst = row + j * s.Lout;
        const float* src = x + ((n0 + j) * s.Cin + ci) * s.L;
        std::fill(dst, dst + lo, 0.0f);
        for (int64_t t = lo; t < hi; ++t) dst[t] = src[t + k - s.padding];
        std::fill(dst + hi, dst + s.Lout, 0.0f);
      }
    }
}

// gx[n0 + j, ci, :] = sum over k of cols row (ci, k) shifted back by k - padding.
void col2im(const float* cols, float* gx, const Conv1dShape& s, int64_t n0, int64_t m) {
  const int64_t width = m * s.Lout;
#pragma omp parallel for collapse(2) if (s.Cin * s.K * width > kParallelMin)
  for (int64_t j = 0; j < m; ++j)
    for (int64_t ci = 0; ci < s.Cin; ++ci) {
      float* dst = gx + ((n0 + j) * s.Cin + ci) * s.L;
      std::fill(dst, dst + s.L, 0.0f);
      for (int64_t k = 0; k < s.K; ++k) {
        int64_t lo, hi;
        valid_range(s, k, lo, hi);
        const float* row = cols + (ci * s.K + k) * width + j * s.Lout;
        for (int64_t t = lo; t < hi; ++t) dst[t + k - s.padding] += row[t];
      }
    }
}

}  // namespace

void conv1d_forward(const float* x, const float* weight, const float* bias, float* y, const Conv1dShape& s) {
  if (s.N == 0 || s.Cout == 0) return;
  const int64_t CK = s.Cin * s.K, nb = chunk_samples(s);
  Scratch cols(CK * nb * s.Lout), out(s.Cout * nb * s.Lout);
  for (int64_t n0 = 0; n0 < s.N; n0 += nb) {
    const int64_t m = std::min(nb, s.N - n0), width = m * s.Lout;
    im2col(x, cols.data, s, n0, m);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(s.Cout), int(width), int(CK), 1.0f, weight, int(CK),
                cols.data, int(width), 0.0f, out.data, int(width));
#pragma omp parallel for collapse(2) if (s.Cout * width > kParallelMin)
    for (int64_t j = 0; j < m; ++j)
      for (int64_t co = 0; co < s.Cout; ++co) {
        const float b = bias ? bias[co] : 0.0f;
        const float* src = out.data + co * width + j * s.Lout;
        float* dst = y + ((n0 + j) * s.Cout + co) * s.Lout;
        for (int64_t t = 0; t < s.Lout; ++t) dst[t] = src[t] + b;
      }
  }
}

void conv1d_backward(const float* x, const float* weight, const float* gy, float* gx, float* gweight, float* gbias,
                     const Conv1dShape& s) {
  const int64_t CK = s.Cin * s.K;
  if (gbias) {
#pragma omp parallel for if (s.N * s.Cout * s.Lout > kParallelMin)
    for (int64_t co = 0; co < s.Cout; ++co) {
      double acc = 0;
      for (int64_t n = 0; n < s.N; ++n) {
        const float* row = gy + (n * s.Cout + co) * s.Lout;
        for (int64_t t = 0; t < s.Lout; ++t) acc += row[t];
      }
      gbias[co] = float(acc);
    }
  }
  if (s.N == 0 || s.Cout == 0) {  // nothing flows back: zero grads (and no zero-sized GEMMs)
    if (gx) std::fill(gx, gx + s.N * s.Cin * s.L, 0.0f);
    if (gweight) std::fill(gweight, gweight + s.Cout * CK, 0.0f);
    return;
  }
  if (!gx && !gweight) return;
  const int64_t nb = chunk_samples(s);
  Scratch cols(CK * nb * s.Lout), gyc(s.Cout * nb * s.Lout);
  for (int64_t n0 = 0; n0 < s.N; n0 += nb) {
    const int64_t m = std::min(nb, s.N - n0), width = m * s.Lout;
    // gy [m, Cout, Lout] (this chunk) -> gyc [Cout, m * Lout]
#pragma omp parallel for collapse(2) if (s.Cout * width > kParallelMin)
    for (int64_t j = 0; j < m; ++j)
      for (int64_t co = 0; co < s.Cout; ++co)
        std::memcpy(gyc.data + co * width + j * s.Lout, gy + ((n0 + j) * s.Cout + co) * s.Lout,
                    size_t(s.Lout) * sizeof(float));
    if (gweight) {  // gweight [Cout, CK] (+)= gyc @ cols^T; the first chunk overwrites
      im2col(x, cols.data, s, n0, m);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(s.Cout), int(CK), int(width), 1.0f, gyc.data,
                  int(width), cols.data, int(width), n0 == 0 ? 0.0f : 1.0f, gweight, int(CK));
    }
    if (gx) {  // dcols [CK, m * Lout] = weight^T @ gyc, reusing the cols buffer; then col2im
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(CK), int(width), int(s.Cout), 1.0f, weight, int(CK),
                  gyc.data, int(width), 0.0f, cols.data, int(width));
      col2im(cols.data, gx, s, n0, m);
    }
  }
}

void conv1d_forward_naive(const float* x, const float* weight, const float* bias, float* y, const Conv1dShape& s) {
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t co = 0; co < s.Cout; ++co)
      for (int64_t t = 0; t < s.Lout; ++t) {
        double acc = bias ? bias[co] : 0.0;
        for (int64_t ci = 0; ci < s.Cin; ++ci)
          for (int64_t k = 0; k < s.K; ++k) {
            int64_t i = t + k - s.padding;
            if (i >= 0 && i < s.L) acc += double(weight[(co * s.Cin + ci) * s.K + k]) * x[(n * s.Cin + ci) * s.L + i];
          }
        y[(n * s.Cout + co) * s.Lout + t] = float(acc);
      }
}

}  // namespace msmix::cpu
