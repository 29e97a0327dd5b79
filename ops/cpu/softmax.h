// CPU kernels for softmax and log_softmax over the last dim of x viewed as R rows of C values.
// Stable: each row is shifted by its max before exp. -inf entries (masked attention) give probability 0
// (log-probability -inf); a row with every entry -inf has no distribution and gives NaN, as PyTorch does.
#pragma once
#include <cstdint>

namespace msmix::cpu {

// y = softmax(x) or, with log, y = x - max - log(sum exp(x - max)); x, y [R, C].
void softmax_forward(const float* x, float* y, int64_t R, int64_t C, bool log);
// From the forward's output y and the output grad g [R, C], per row:
//   softmax:     gx = y * (g - sum(g * y))
//   log_softmax: gx = g - exp(y) * sum(g)
void softmax_backward(const float* y, const float* g, float* gx, int64_t R, int64_t C, bool log);

}  // namespace msmix::cpu
