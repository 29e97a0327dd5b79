// Elementwise unary ops: y = f(x) and its backward gx = g * f'(x) (from x and/or the saved output y), with the
// same formulas as the CPU twin (ops/cpu/unary.cpp), in CUDA's accurate float math (no --use_fast_math).
// Launch: kUnroll elements per thread per round of a grid-stride loop (common.cuh's unrolled_map).
// Bound: memory (8 bytes per element forward, up to 16 backward); erf / tanh / pow are cheap beside that.
#include "ops/cuda/common.cuh"
#include "ops/cuda/kernels.h"

namespace msmix::cuda {
namespace {

constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;

// Forward functors: f(x, params).
struct Neg { __device__ static float f(float x, UnaryParams) { return -x; } };
struct Exp { __device__ static float f(float x, UnaryParams) { return expf(x); } };
struct Log { __device__ static float f(float x, UnaryParams) { return logf(x); } };
struct Sqrt { __device__ static float f(float x, UnaryParams) { return sqrtf(x); } };
struct Rsqrt { __device__ static float f(float x, UnaryParams) { return 1.0f / sqrtf(x); } };
struct Pow { __device__ static float f(float x, UnaryParams p) { return powf(x, p.p0); } };
struct Abs { __device__ static float f(float x, UnaryParams) { return fabsf(x); } };
struct Relu { __device__ static float f(float x, UnaryParams) { return x <= 0 ? 0.0f : x; } };  // NaN stays NaN
struct Gelu { __device__ static float f(float x, UnaryParams) { return 0.5f * x * (1.0f + erff(x * kInvSqrt2)); } };
struct Tanh { __device__ static float f(float x, UnaryParams) { return tanhf(x); } };
struct Sigmoid { __device__ static float f(float x, UnaryParams) { return 1.0f / (1.0f + expf(-x)); } };
struct Softplus {  // linear above the threshold, as PyTorch (avoids exp overflow)
  __device__ static float f(float x, UnaryParams p) {
    const float bx = p.p0 * x;
    return bx > p.p1 ? x : log1pf(expf(bx)) / p.p0;
  }
};
struct Clamp {  // fminf / fmaxf alone would turn NaN into a bound
  __device__ static float f(float x, UnaryParams p) { return isnan(x) ? x : fminf(fmaxf(x, p.p0), p.p1); }
};
struct NormalCdf { __device__ static float f(float x, UnaryParams) { return 0.5f * erfcf(-x * kInvSqrt2); } };

// Backward functors: b(x, y, g, params) = g * f'(x).
struct NegB { __device__ static float b(float, float, float g, UnaryParams) { return -g; } };
struct ExpB { __device__ static float b(float, float y, float g, UnaryParams) { return g * y; } };
struct LogB { __device__ static float b(float x, float, float g, UnaryParams) { return g / x; } };
struct SqrtB { __device__ static float b(float, float y, float g, UnaryParams) { return g * 0.5f / y; } };
struct RsqrtB { __device__ static float b(float, float y, float g, UnaryParams) { return g * -0.5f * y * y * y; } };
struct PowB {
  __device__ static float b(float x, float, float g, UnaryParams p) {
    return p.p0 == 0 ? 0.0f : g * p.p0 * powf(x, p.p0 - 1);
  }
};
struct AbsB {
  __device__ static float b(float x, float, float g, UnaryParams) { return x > 0 ? g : (x < 0 ? -g : 0.0f); }
};
struct ReluB { __device__ static float b(float x, float, float g, UnaryParams) { return x <= 0 ? 0.0f : g; } };
struct GeluB {  // Phi(x) + x * phi(x)
  __device__ static float b(float x, float, float g, UnaryParams) {
    const float cdf = 0.5f * (1.0f + erff(x * kInvSqrt2));
    const float pdf = kInvSqrt2Pi * expf(-0.5f * x * x);
    return g * (cdf + x * pdf);
  }
};
struct TanhB { __device__ static float b(float, float y, float g, UnaryParams) { return g * (1.0f - y * y); } };
struct SigmoidB { __device__ static float b(float, float y, float g, UnaryParams) { return g * y * (1.0f - y); } };
struct SoftplusB {
  __device__ static float b(float x, float, float g, UnaryParams p) {
    const float bx = p.p0 * x;
    return bx > p.p1 ? g : g / (1.0f + expf(-bx));
  }
};
struct ClampB {
  __device__ static float b(float x, float, float g, UnaryParams p) { return (x >= p.p0 && x <= p.p1) ? g : 0.0f; }
};
struct NormalCdfB {  // phi(x)
  __device__ static float b(float x, float, float g, UnaryParams) { return g * kInvSqrt2Pi * expf(-0.5f * x * x); }
};

template <class F>
__global__ void forward_kernel(UnaryParams p, const float* x, float* y, int64_t n) {
  unrolled_map(n, [&](int64_t i) { return x[i]; }, [&](int64_t i, float v) { y[i] = F::f(v, p); });
}

// Loads a derivative does not use (x for tanh, y for relu, ...) are dead code after inlining: no traffic.
struct XYG {
  float x, y, g;
};
template <class B>
__global__ void backward_kernel(UnaryParams p, const float* x, const float* y, const float* g, float* gx, int64_t n) {
  unrolled_map(
      n, [&](int64_t i) { return XYG{x[i], y[i], g[i]}; },
      [&](int64_t i, const XYG& v) { gx[i] = B::b(v.x, v.y, v.g, p); });
}

template <class F>
void fwd(UnaryParams p, const float* x, float* y, int64_t n) {
  if (n == 0) return;
  forward_kernel<F><<<blocks_for_unrolled(n), kThreads>>>(p, x, y, n);
  CUDA_CHECK_LAUNCH("unary forward_kernel");
}

template <class B>
void bwd(UnaryParams p, const float* x, const float* y, const float* g, float* gx, int64_t n) {
  if (n == 0) return;
  backward_kernel<B><<<blocks_for_unrolled(n), kThreads>>>(p, x, y, g, gx, n);
  CUDA_CHECK_LAUNCH("unary backward_kernel");
}

}  // namespace

void unary_forward(UnaryOp op, UnaryParams p, const float* x, float* y, int64_t n) {
  switch (op) {
    case UnaryOp::Neg: return fwd<Neg>(p, x, y, n);
    case UnaryOp::Exp: return fwd<Exp>(p, x, y, n);
    case UnaryOp::Log: return fwd<Log>(p, x, y, n);
    case UnaryOp::Sqrt: return fwd<Sqrt>(p, x, y, n);
    case UnaryOp::Rsqrt: return fwd<Rsqrt>(p, x, y, n);
    case UnaryOp::Pow: return fwd<Pow>(p, x, y, n);
    case UnaryOp::Abs: return fwd<Abs>(p, x, y, n);
    case UnaryOp::Relu: return fwd<Relu>(p, x, y, n);
    case UnaryOp::Gelu: return fwd<Gelu>(p, x, y, n);
    case UnaryOp::Tanh: return fwd<Tanh>(p, x, y, n);
    case UnaryOp::Sigmoid: return fwd<Sigmoid>(p, x, y, n);
    case UnaryOp::Softplus: return fwd<Softplus>(p, x, y, n);
    case UnaryOp::Clamp: return fwd<Clamp>(p, x, y, n);
    case UnaryOp::NormalCdf: return fwd<NormalCdf>(p, x, y, n);
  }
}

void unary_backward(UnaryOp op, UnaryParams p, const float* x, const float* y, const float* g, float* gx, int64_t n) {
  switch (op) {
    case UnaryOp::Neg: return bwd<NegB>(p, x, y, g, gx, n);
    case UnaryOp::Exp: return bwd<ExpB>(p, x, y, g, gx, n);
    case UnaryOp::Log: return bwd<LogB>(p, x, y, g, gx, n);
    case UnaryOp::Sqrt: return bwd<SqrtB>(p, x, y, g, gx, n);
    case UnaryOp::Rsqrt: return bwd<RsqrtB>(p, x, y, g, gx, n);
    case UnaryOp::Pow: return bwd<PowB>(p, x, y, g, gx, n);
    case UnaryOp::Abs: return bwd<AbsB>(p, x, y, g, gx, n);
    case UnaryOp::Relu: return bwd<ReluB>(p, x, y, g, gx, n);
    case UnaryOp::Gelu: return bwd<GeluB>(p, x, y, g, gx, n);
    case UnaryOp::Tanh: return bwd<TanhB>(p, x, y, g, gx, n);
    case UnaryOp::Sigmoid: return bwd<SigmoidB>(p, x, y, g, gx, n);
    case UnaryOp::Softplus: return bwd<SoftplusB>(p, x, y, g, gx, n);
    case UnaryOp::Clamp: return bwd<ClampB>(p, x, y, g, gx, n);
    case UnaryOp::NormalCdf: return bwd<NormalCdfB>(p, x, y, g, gx, n);
  }
}

}  // namespace msmix::cuda
