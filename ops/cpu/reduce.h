// CPU reduction kernel: x viewed as [outer, D, inner], out[o, i] = reduce_d x[o, d, i].
#pragma once
#include <cstdint>

namespace msmix {
enum class ReduceOp { Sum, Max };
namespace cpu {
void reduce_dim(ReduceOp op, const float* x, float* out, int64_t outer, int64_t D, int64_t inner);
}  // namespace cpu
}  // namespace msmix
