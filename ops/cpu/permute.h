// CPU kernel for permute: out[j0, j1, ...] = x[i...] where out dim k is x dim perm[k].
#pragma once
#include <vector>

#include "engine/shape.h"

namespace msmix::cpu {
void permute(const float* x, const Shape& x_shape, const std::vector<int64_t>& perm, float* out);
}  // namespace msmix::cpu
