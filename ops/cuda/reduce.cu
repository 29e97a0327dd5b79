// Sum and max over the middle dim of x viewed as [outer, D, inner]: out[o, i] = reduce_d x[o, d, i].
// Sums accumulate in double (as the CPU twin's row path), max lets NaN through (as the CPU twin).
// Launch, by shape: D <= 32: one thread per output; inner == 1: one warp per row (8 rows per 256-thread
// block), lanes striding the row; inner > 1: 32x8 blocks, 32 neighbouring columns per block (coalesced) and
// 8 thread rows splitting D, combined through shared memory. When there are few outputs and long rows
// (a full sum, a bias grad over many rows) D is split into S chunks, enough for about 8192 warps (rows) or
// 1024 blocks (columns) in all, written as partials [outer, S, inner] and reduced again: the GPU stays busy.
// Bound: memory (one read of x).
#include <cmath>

#include "ops/cuda/common.cuh"
#include "ops/cuda/kernels.h"

namespace msmix::cuda {
namespace {

constexpr int64_t kSmallD = 32;          // up to this many values per output: a thread each
constexpr int64_t kFewOutputs = 4096;    // fewer outputs than this and ...
constexpr int64_t kSplitMinD = 4096;     // ... at least this many values each: split D
constexpr int64_t kMinChunk = 256;       // values per chunk when splitting, at least
constexpr int64_t kTargetWarps = 8192;   // row path: warps wanted in all (about 62 per SM on an H100)
constexpr int64_t kTargetBlocks = 1024;  // column path: 256-thread blocks wanted in all
constexpr unsigned kMaxGridY = 65535;

struct SumR {
  using T = double;
  __device__ static T init() { return 0.0; }
  __device__ static T combine(T a, T b) { return a + b; }
};
struct MaxR {
  using T = float;
  __device__ static T init() { return -INFINITY; }
  __device__ static T combine(T a, T b) { return MaxOp()(a, b); }
};

// The group of d a partial covers: chunk s of S over [0, D).
struct Split {
  int64_t S, chunk;
  __device__ int64_t begin(int64_t s) const { return s * chunk; }
  __device__ int64_t end(int64_t s, int64_t D) const { return min(D, (s + 1) * chunk); }
};

// acc combined with p[d * stride] for d = begin, begin + step, ... < end, in that order (the sums' bits do not
// depend on it), with kUnroll loads issued together: one load per iteration left each warp waiting on memory,
// and the full sum ran at half of an H200's copy bandwidth (gpucheck, 2026-11-27).
template <class R>
__device__ __forceinline__ typename R::T strided_reduce(typename R::T acc, const float* p, int64_t begin, int64_t end,
                                                        int64_t step, int64_t stride) {
  int64_t d = begin;
  for (; d + (kUnroll - 1) * step < end; d += kUnroll * step) {
    float v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) v[u] = p[(d + u * step) * stride];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) acc = R::combine(acc, typename R::T(v[u]));
  }
  for (; d < end; d += step) acc = R::combine(acc, typename R::T(p[d * stride]));
  return acc;
}

template <class R>
__global__ void per_output_kernel(const float* x, float* out, int64_t outer, int64_t D, int64_t inner) {
  MSMIX_GRID_LOOP(j, outer * inner) {
    const int64_t o = j / inner, i = j - o * inner;
    out[j] = float(strided_reduce<R>(R::init(), x + o * D * inner + i, 0, D, 1, inner));
  }
}

// inner == 1: warp w of the grid reduces row o = w / S, chunk s = w % S, into out[w].
template <class R>
__global__ void row_kernel(const float* x, float* out, int64_t outer, int64_t D, Split sp) {
  const int lane = threadIdx.x % 32;
  const int64_t warps_per_block = blockDim.x / 32;
  const int64_t groups = outer * sp.S;
  for (int64_t w = blockIdx.x * warps_per_block + threadIdx.x / 32; w < groups; w += gridDim.x * warps_per_block) {
    const int64_t o = w / sp.S, s = w - o * sp.S;
    const float* row = x + o * D;
    typename R::T acc = strided_reduce<R>(R::init(), row, sp.begin(s) + lane, sp.end(s, D), 32, 1);
    acc = group_reduce<32>(acc, [](typename R::T a, typename R::T b) { return R::combine(a, b); },
                           static_cast<typename R::T*>(nullptr));
    if (lane == 0) out[w] = float(acc);
  }
}

// inner > 1: block (bx, by) covers columns [32 bx, 32 bx + 32) of group by = (o, s); thread (tx, ty) sums
// d = begin + ty, begin + ty + 8, ...; the 8 partial sums per column meet in shared memory.
template <class R>
__global__ void column_kernel(const float* x, float* out, int64_t outer, int64_t D, int64_t inner, Split sp) {
  __shared__ typename R::T part[8][33];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t col_blocks = (inner + 31) / 32, groups = outer * sp.S;
  for (int64_t grp = blockIdx.y; grp < groups; grp += gridDim.y) {
    const int64_t o = grp / sp.S, s = grp - o * sp.S;
    for (int64_t cb = blockIdx.x; cb < col_blocks; cb += gridDim.x) {
      const int64_t i = cb * 32 + tx;
      typename R::T acc = R::init();
      if (i < inner) acc = strided_reduce<R>(acc, x + o * D * inner + i, sp.begin(s) + ty, sp.end(s, D), 8, inner);
      part[ty][tx] = acc;
      __syncthreads();
      if (ty == 0 && i < inner) {
        for (int k = 1; k < 8; ++k) acc = R::combine(acc, part[k][tx]);
        out[grp * inner + i] = float(acc);
      }
      __syncthreads();  // part is rewritten by the next iteration
    }
  }
}

// One pass over [outer, D, inner] into out [outer, S, inner].
template <class R>
void reduce_pass(const float* x, float* out, int64_t outer, int64_t D, int64_t inner, Split sp) {
  if (D <= kSmallD && sp.S == 1) {
    per_output_kernel<R><<<blocks_for(outer * inner), kThreads>>>(x, out, outer, D, inner);
    CUDA_CHECK_LAUNCH("reduce per_output_kernel");
  } else if (inner == 1) {
    row_kernel<R><<<blocks_for(outer * sp.S * 32), kThreads>>>(x, out, outer, D, sp);
    CUDA_CHECK_LAUNCH("reduce row_kernel");
  } else {
    const int64_t col_blocks = (inner + 31) / 32;
    dim3 grid(unsigned(std::min<int64_t>(col_blocks, kMaxBlocks)),
              unsigned(std::min<int64_t>(outer * sp.S, kMaxGridY)));
    column_kernel<R><<<grid, dim3(32, 8)>>>(x, out, outer, D, inner, sp);
    CUDA_CHECK_LAUNCH("reduce column_kernel");
  }
}

template <class R>
void reduce(const float* x, float* out, int64_t outer, int64_t D, int64_t inner) {
  if (outer * inner == 0) return;
  const int64_t outputs = outer * inner;
  if (outputs < kFewOutputs && D >= kSplitMinD) {
    const int64_t units = inner == 1 ? outer : outer * ((inner + 31) / 32);  // warps or blocks without a split
    const int64_t want = inner == 1 ? kTargetWarps : kTargetBlocks;
    const int64_t S = std::min((D + kMinChunk - 1) / kMinChunk, (want + units - 1) / units);
    if (S > 1) {
      const Split sp{S, (D + S - 1) / S};
      DeviceBuffer partial(size_t(outer * S * inner));
      reduce_pass<R>(x, partial.get(), outer, D, inner, sp);
      reduce_pass<R>(partial.get(), out, outer, S, inner, Split{1, S});
      return;
    }
  }
  reduce_pass<R>(x, out, outer, D, inner, Split{1, std::max<int64_t>(D, 1)});
}

}  // namespace

void reduce_dim(ReduceOp op, const float* x, float* out, int64_t outer, int64_t D, int64_t inner) {
  if (op == ReduceOp::Max) reduce<MaxR>(x, out, outer, D, inner);
  else reduce<SumR>(x, out, outer, D, inner);
}

}  // namespace msmix::cuda
