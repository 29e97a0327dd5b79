// CPU kernels for elementwise unary ops: forward y = f(x), backward gx = g * f'(x) (from x and/or y).
#pragma once
#include <cstdint>

namespace msmix {

enum class UnaryOp { Neg, Exp, Log, Sqrt, Rsqrt, Pow, Abs, Relu, Gelu, Tanh, Sigmoid, Softplus, Clamp, NormalCdf };

// Op parameters: Pow uses p0 (exponent); Softplus p0 (beta), p1 (threshold); Clamp p0 (lo), p1 (hi).
struct UnaryParams {
  float p0 = 0, p1 = 0;
};

namespace cpu {
void unary_forward(UnaryOp op, UnaryParams params, const float* x, float* y, int64_t n);
void unary_backward(UnaryOp op, UnaryParams params, const float* x, const float* y, const float* g, float* gx,
                    int64_t n);
}  // namespace cpu
}  // namespace msmix
