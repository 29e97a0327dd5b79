// CPU kernels for conv1d (stride 1, zero padding on both sides) via im2col + one cblas_sgemm per chunk of
// samples, and a direct-loop kernel kept as the reference that tests (and a future CUDA kernel) compare to.
#pragma once
#include <cstdint>

namespace msmix::cpu {

// x [N, Cin, L], weight [Cout, Cin, K], bias [Cout], y [N, Cout, Lout] with Lout = L + 2 * padding - K + 1 >= 1.
struct Conv1dShape {
  int64_t N, Cin, L, Cout, K, padding, Lout;
};

// y = conv(x, weight) + bias; bias may be null.
void conv1d_forward(const float* x, const float* weight, const float* bias, float* y, const Conv1dShape& s);
// gy [N, Cout, Lout] -> gx [N, Cin, L], gweight [Cout, Cin, K], gbias [Cout]; each may be null (not wanted).
void conv1d_backward(const float* x, const float* weight, const float* gy, float* gx, float* gweight, float* gbias,
                     const Conv1dShape& s);
// The same forward as plain nested loops accumulating in double: slow, obviously correct.
void conv1d_forward_naive(const float* x, const float* weight, const float* bias, float* y, const Conv1dShape& s);

}  // namespace msmix::cpu
