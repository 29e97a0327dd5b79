// CPU kernel for dropout. The mask is never stored: element i is kept when
// philox::uniform(seed, offset, i) >= p, so forward and backward regenerate the same mask from
// (seed, offset), on any device and thread layout.
#pragma once
#include <cstdint>

namespace msmix::cpu {

// out[i] = keep(i) ? in[i] * scale : 0, for i in [0, n). Forward (in = x) and backward (in = grad) alike.
void dropout_apply(const float* in, float* out, int64_t n, float p, float scale, uint64_t seed, uint64_t offset);

}  // namespace msmix::cpu
