#include "ops/cpu/binary.h"

#include <algorithm>
#include <vector>

#include "ops/cpu/fast_math.h"

namespace msmix::cpu {
namespace {

struct Add { static float f(float x, float y) { return x + y; } };
struct Sub { static float f(float x, float y) { return x - y; } };
struct Mul { static float f(float x, float y) { return x * y; } };
struct Div { static float f(float x, float y) { return x / y; } };
struct First { static float f(float x, float) { return x; } };
struct Eq { static float f(float x, float y) { return x == y ? 1.0f : 0.0f; } };

constexpr int64_t kParallelMin = 1 << 15;  // below this, threads cost more than they save

// Same shapes: the run-time picked vector kernel (AVX2 where present) over chunks, chunks in parallel.
using ArrayKernel = void (*)(const float*, const float*, float*, int64_t);
ArrayKernel array_kernel(const VecKernels& k, BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return k.add;
    case BinaryOp::Sub: return k.sub;
    case BinaryOp::Mul: return k.mul;
    case BinaryOp::Div: return k.div;
    case BinaryOp::Eq: break;
  }
  return nullptr;
}

void same_shape(ArrayKernel kernel, const float* a, const float* b, float* out, int64_t n) {
  const int64_t chunk = 1 << 14, chunks = (n + chunk - 1) / chunk;
#pragma omp parallel for if (n > kParallelMin)
  for (int64_t c = 0; c < chunks; ++c)
    kernel(a + c * chunk, b + c * chunk, out + c * chunk, std::min(chunk, n - c * chunk));
}

// Rows of the output (all dims but the last) are independent; within a row each operand either walks
// (stride 1) or repeats one value (stride 0), so the inner loop is a plain vectorisable loop.
template <class F>
void broadcast_loop(const float* a, const Shape& a_shape, const float* b, const Shape& b_shape, float* out,
                    const Shape& out_shape, ArrayKernel kernel = nullptr) {
  int64_t rank = int64_t(out_shape.size());
  int64_t n = shape_numel(out_shape);
  if (n == 0) return;
  if (a_shape == out_shape && b_shape == out_shape) {
    if (kernel) return same_shape(kernel, a, b, out, n);
#pragma omp parallel for simd if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) out[i] = F::f(a[i], b[i]);
    return;
  }
  // Per-dim element strides of a and b in the output's index space (0 where broadcast).
  std::vector<int64_t> sa(rank, 0), sb(rank, 0);
  auto fill_strides = [&](const Shape& s, std::vector<int64_t>& st) {
    int64_t offset = rank - int64_t(s.size()), acc = 1;
    for (int64_t d = int64_t(s.size()) - 1; d >= 0; --d) {
      st[d + offset] = s[d] == 1 ? 0 : acc;
      acc *= s[d];
    }
  };
  fill_strides(a_shape, sa);
  fill_strides(b_shape, sb);
  int64_t inner = rank ? out_shape[rank - 1] : 1;
  int64_t rows = n / inner;
  int64_t ia = rank ? sa[rank - 1] : 0, ib = rank ? sb[rank - 1] : 0;
#pragma omp parallel for if (n > kParallelMin)
  for (int64_t row = 0; row < rows; ++row) {
    int64_t oa = 0, ob = 0, rest = row;
    for (int64_t d = rank - 2; d >= 0; --d) {
      int64_t idx = rest % out_shape[d];
      rest /= out_shape[d];
      oa += idx * sa[d];
      ob += idx * sb[d];
    }
    const float* pa = a + oa;
    const float* pb = b + ob;
    float* po = out + row * inner;
    if (ia && ib) {
      for (int64_t i = 0; i < inner; ++i) po[i] = F::f(pa[i], pb[i]);
    } else if (ia) {
      float vb = pb[0];
      for (int64_t i = 0; i < inner; ++i) po[i] = F::f(pa[i], vb);
    } else if (ib) {
      float va = pa[0];
      for (int64_t i = 0; i < inner; ++i) po[i] = F::f(va, pb[i]);
    } else {
      float v = F::f(pa[0], pb[0]);
      for (int64_t i = 0; i < inner; ++i) po[i] = v;
    }
  }
}

template <class F>
void scalar_loop(const float* a, float s, bool scalar_first, float* out, int64_t n) {
  if (scalar_first) {
#pragma omp parallel for simd if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) out[i] = F::f(s, a[i]);
  } else {
#pragma omp parallel for simd if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) out[i] = F::f(a[i], s);
  }
}

}  // namespace

void binary_forward(BinaryOp op, const float* a, const Shape& a_shape, const float* b, const Shape& b_shape,
                    float* out, const Shape& out_shape) {
  ArrayKernel kernel = array_kernel(vec_kernels(), op);
  switch (op) {
    case BinaryOp::Add: return broadcast_loop<Add>(a, a_shape, b, b_shape, out, out_shape, kernel);
    case BinaryOp::Sub: return broadcast_loop<Sub>(a, a_shape, b, b_shape, out, out_shape, kernel);
    case BinaryOp::Mul: return broadcast_loop<Mul>(a, a_shape, b, b_shape, out, out_shape, kernel);
    case BinaryOp::Div: return broadcast_loop<Div>(a, a_shape, b, b_shape, out, out_shape, kernel);
    case BinaryOp::Eq: return broadcast_loop<Eq>(a, a_shape, b, b_shape, out, out_shape);
  }
}

void broadcast_to(const float* a, const Shape& a_shape, float* out, const Shape& out_shape) {
  broadcast_loop<First>(a, a_shape, a, a_shape, out, out_shape);
}

void binary_scalar_forward(BinaryOp op, const float* a, float s, bool scalar_first, float* out, int64_t n) {
  switch (op) {
    case BinaryOp::Add: return scalar_loop<Add>(a, s, scalar_first, out, n);
    case BinaryOp::Sub: return scalar_loop<Sub>(a, s, scalar_first, out, n);
    case BinaryOp::Mul: return scalar_loop<Mul>(a, s, scalar_first, out, n);
    case BinaryOp::Div: return scalar_loop<Div>(a, s, scalar_first, out, n);
    case BinaryOp::Eq: return scalar_loop<Eq>(a, s, scalar_first, out, n);
  }
}

}  // namespace msmix::cpu
