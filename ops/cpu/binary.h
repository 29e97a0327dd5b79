// CPU kernels for elementwise binary ops with numpy broadcasting.
#pragma once
#include <cstdint>

#include "engine/shape.h"

namespace msmix {

enum class BinaryOp { Add, Sub, Mul, Div, Eq };

namespace cpu {

// out[out_shape] = a op b, each operand broadcast to out_shape (its shape right-aligned, size-1 dims repeated).
void binary_forward(BinaryOp op, const float* a, const Shape& a_shape, const float* b, const Shape& b_shape,
                    float* out, const Shape& out_shape);
// out[out_shape] = a broadcast to out_shape (expand).
void broadcast_to(const float* a, const Shape& a_shape, float* out, const Shape& out_shape);
// out[i] = a[i] op s, or s op a[i] when scalar_first.
void binary_scalar_forward(BinaryOp op, const float* a, float s, bool scalar_first, float* out, int64_t n);

}  // namespace cpu
}  // namespace msmix
