// Elementwise binary ops with numpy broadcasting: out[i] = a[ia(i)] op b[ib(i)], and a op scalar.
// Launch: one thread per output element in a grid-stride loop (256 threads per block, at most 65536 blocks).
// Bound: memory (one flop per 8-12 bytes moved). Equal shapes skip the index arithmetic; otherwise dims are
// merged on the host first (size-1 output dims dropped, neighbours with compatible strides fused), so the
// per-element divisions run over the merged rank (1 or 2 for bias rows, columns and scalars). Bias rows
// themselves ([R, C] op [C] or [C] op [R, C], C >= 32, after merging) take rows_kernel: no division at all.
#include <algorithm>

#include "engine/error.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/kernels.h"

namespace msmix::cuda {
namespace {

struct Add { __device__ static float f(float x, float y) { return x + y; } };
struct Sub { __device__ static float f(float x, float y) { return x - y; } };
struct Mul { __device__ static float f(float x, float y) { return x * y; } };
struct Div { __device__ static float f(float x, float y) { return x / y; } };
struct First { __device__ static float f(float x, float) { return x; } };
struct Eq { __device__ static float f(float x, float y) { return x == y ? 1.0f : 0.0f; } };

constexpr int kMaxRank = 8;

// The output's (merged) sizes and each operand's element strides in that index space (0 = broadcast).
struct Layout {
  int rank = 0;
  int64_t size[kMaxRank];
  int64_t sa[kMaxRank];
  int64_t sb[kMaxRank];
};

Layout make_layout(const Shape& a_shape, const Shape& b_shape, const Shape& out_shape) {
  const int64_t rank = int64_t(out_shape.size());
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
  // Merge from the innermost dim outwards: dim d joins the merged dim to its right when, for both operands,
  // stepping d is the same as stepping past the whole merged dim (stride[d] == stride[inner] * size[inner]).
  std::vector<int64_t> size, ma, mb;  // innermost first
  for (int64_t d = rank - 1; d >= 0; --d) {
    if (out_shape[d] == 1) continue;
    if (!size.empty() && sa[d] == ma.back() * size.back() && sb[d] == mb.back() * size.back()) {
      size.back() *= out_shape[d];
      continue;
    }
    size.push_back(out_shape[d]);
    ma.push_back(sa[d]);
    mb.push_back(sb[d]);
  }
  MSMIX_CHECK(size.size() <= size_t(kMaxRank), "broadcast: {} and {} to {} needs {} index dims on the GPU (at most {})",
              shape_str(a_shape), shape_str(b_shape), shape_str(out_shape), size.size(), kMaxRank);
  Layout l;
  l.rank = int(size.size());
  for (int k = 0; k < l.rank; ++k) {  // back to outermost first
    l.size[k] = size[l.rank - 1 - k];
    l.sa[k] = ma[l.rank - 1 - k];
    l.sb[k] = mb[l.rank - 1 - k];
  }
  return l;
}

template <class F>
__global__ void same_shape_kernel(const float* a, const float* b, float* out, int64_t n) {
  unrolled_map(
      n, [&](int64_t i) { return float2{a[i], b[i]}; }, [&](int64_t i, float2 v) { out[i] = F::f(v.x, v.y); });
}

// Index: uint32_t when every index fits (the usual case), since 64-bit division is a long software sequence
// on the GPU and made this kernel compute-bound; int64_t otherwise.
// kUnroll elements per thread with their loads issued together (unrolled_map), as the same-shape kernel: one
// element per thread reached half of an H200's copy bandwidth on bias rows (gpucheck, 2026-11-27).
template <class F, class Index>
__global__ void broadcast_kernel(const float* a, const float* b, float* out, int64_t n, Layout l) {
  auto load = [&](int64_t i) {
    Index rest = Index(i), oa = 0, ob = 0;
    for (int d = l.rank - 1; d > 0; --d) {
      const Index size = Index(l.size[d]), q = rest / size, idx = rest - q * size;
      oa += idx * Index(l.sa[d]);
      ob += idx * Index(l.sb[d]);
      rest = q;
    }
    if (l.rank > 0) oa += rest * Index(l.sa[0]), ob += rest * Index(l.sb[0]);  // rest < size[0]: no division
    return float2{a[oa], b[ob]};
  };
  unrolled_map(n, load, [&](int64_t i, float2 v) { out[i] = F::f(v.x, v.y); });
}

// Rows [R, C] op a row vector [C] (kRowsFirst) or the vector op the rows: a bias added to every row. Threads
// span the columns, each reading its vec[c] once and walking rows blockIdx.y, + gridDim.y, ... with kUnroll
// loads in flight: no index division (which bounded broadcast_kernel here: 69% of copy on an H200).
template <class F, bool kRowsFirst>
__global__ void rows_kernel(const float* rows, const float* vec, float* out, int64_t R, int64_t C) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= C) return;
  const float v = vec[c];
  const int64_t step = gridDim.y;
  for (int64_t r0 = blockIdx.y; r0 < R; r0 += kUnroll * step) {
    float x[kUnroll];
#pragma unroll
    for (int k = 0; k < kUnroll; ++k)
      if (r0 + k * step < R) x[k] = rows[(r0 + k * step) * C + c];
#pragma unroll
    for (int k = 0; k < kUnroll; ++k)
      if (r0 + k * step < R) out[(r0 + k * step) * C + c] = kRowsFirst ? F::f(x[k], v) : F::f(v, x[k]);
  }
}

// The bias-rows layout after merging: 0 when it is not one, 1 when a is the rows, 2 when b is.
int rows_layout(const Layout& l) {
  if (l.rank != 2 || l.size[1] < 32 || l.sa[1] != 1 || l.sb[1] != 1) return 0;
  if (l.sa[0] == l.size[1] && l.sb[0] == 0) return 1;
  if (l.sa[0] == 0 && l.sb[0] == l.size[1]) return 2;
  return 0;
}

template <class F>
__global__ void scalar_kernel(const float* a, float s, bool scalar_first, float* out, int64_t n) {
  auto load = [&](int64_t i) { return a[i]; };
  if (scalar_first) unrolled_map(n, load, [&](int64_t i, float v) { out[i] = F::f(s, v); });
  else unrolled_map(n, load, [&](int64_t i, float v) { out[i] = F::f(v, s); });
}

template <class F>
void launch_binary(const float* a, const Shape& a_shape, const float* b, const Shape& b_shape, float* out,
                   const Shape& out_shape) {
  const int64_t n = shape_numel(out_shape);
  if (n == 0) return;
  if (a_shape == out_shape && b_shape == out_shape) {
    same_shape_kernel<F><<<blocks_for_unrolled(n), kThreads>>>(a, b, out, n);
    CUDA_CHECK_LAUNCH("binary same_shape_kernel");
    return;
  }
  const Layout l = make_layout(a_shape, b_shape, out_shape);
  if (const int rows = rows_layout(l)) {
    const int64_t R = l.size[0], C = l.size[1];
    const unsigned col_blocks = unsigned((C + kThreads - 1) / kThreads);  // C < n < 2^63 / kThreads
    // About 4096 blocks in all (the grid-stride loop takes the rest), each thread at least kUnroll rows.
    const int64_t row_blocks = std::max<int64_t>(
        1, std::min<int64_t>({(R + kUnroll - 1) / kUnroll, 4096 / std::max<int64_t>(1, col_blocks), 65535}));
    const dim3 grid(col_blocks, unsigned(row_blocks));
    if (rows == 1) rows_kernel<F, true><<<grid, kThreads>>>(a, b, out, R, C);
    else rows_kernel<F, false><<<grid, kThreads>>>(b, a, out, R, C);
    CUDA_CHECK_LAUNCH("binary rows_kernel");
    return;
  }
  // Offsets into a or b never exceed n (their sizes divide out's), so n decides the index width.
  if (n < (int64_t(1) << 31)) broadcast_kernel<F, uint32_t><<<blocks_for_unrolled(n), kThreads>>>(a, b, out, n, l);
  else broadcast_kernel<F, int64_t><<<blocks_for_unrolled(n), kThreads>>>(a, b, out, n, l);
  CUDA_CHECK_LAUNCH("binary broadcast_kernel");
}

template <class F>
void launch_scalar(const float* a, float s, bool scalar_first, float* out, int64_t n) {
  if (n == 0) return;
  scalar_kernel<F><<<blocks_for_unrolled(n), kThreads>>>(a, s, scalar_first, out, n);
  CUDA_CHECK_LAUNCH("binary scalar_kernel");
}

}  // namespace

void binary_forward(BinaryOp op, const float* a, const Shape& a_shape, const float* b, const Shape& b_shape,
                    float* out, const Shape& out_shape) {
  switch (op) {
    case BinaryOp::Add: return launch_binary<Add>(a, a_shape, b, b_shape, out, out_shape);
    case BinaryOp::Sub: return launch_binary<Sub>(a, a_shape, b, b_shape, out, out_shape);
    case BinaryOp::Mul: return launch_binary<Mul>(a, a_shape, b, b_shape, out, out_shape);
    case BinaryOp::Div: return launch_binary<Div>(a, a_shape, b, b_shape, out, out_shape);
    case BinaryOp::Eq: return launch_binary<Eq>(a, a_shape, b, b_shape, out, out_shape);
  }
}

void broadcast_to(const float* a, const Shape& a_shape, float* out, const Shape& out_shape) {
  launch_binary<First>(a, a_shape, a, a_shape, out, out_shape);
}

void binary_scalar_forward(BinaryOp op, const float* a, float s, bool scalar_first, float* out, int64_t n) {
  switch (op) {
    case BinaryOp::Add: return launch_scalar<Add>(a, s, scalar_first, out, n);
    case BinaryOp::Sub: return launch_scalar<Sub>(a, s, scalar_first, out, n);
    case BinaryOp::Mul: return launch_scalar<Mul>(a, s, scalar_first, out, n);
    case BinaryOp::Div: return launch_scalar<Div>(a, s, scalar_first, out, n);
    case BinaryOp::Eq: return launch_scalar<Eq>(a, s, scalar_first, out, n);
  }
}

}  // namespace msmix::cuda
