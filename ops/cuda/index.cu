// Copy-like indexing kernels: copy_along_dim (concat, slice and their backwards), permute, index_select /
// embedding forward, gather forward and where (masked_fill). Their scatter-add backwards are in scatter.cu.
// Launch: one thread per output element in a grid-stride loop (256 threads per block, at most 65536 blocks);
// an element's source offset comes from its output coordinates (divisions over at most kMaxRank dims).
// Bound: memory (a load and a store per element; index loads hit the cache).
#include <vector>

#include "engine/error.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/kernels.h"

namespace msmix::cuda {
namespace {

constexpr int kMaxRank = 8;

// Output sizes and, per operand, its element stride in the output's index space (0 = broadcast or, for
// gather, the indexed dim whose coordinate comes from the index).
struct Strided {
  int rank = 0;
  int64_t size[kMaxRank];
  int64_t s0[kMaxRank];
  int64_t s1[kMaxRank];
  int64_t s2[kMaxRank];
};

void check_rank(const char* op, const Shape& shape) {
  MSMIX_CHECK(shape.size() <= size_t(kMaxRank), "cuda {}: shape {} has more than {} dims", op, shape_str(shape),
              kMaxRank);
}

// Strides of `shape` broadcast to rank `rank` (numpy rules: size 1 or missing dims get 0).
void broadcast_strides(const Shape& shape, int rank, int64_t* out) {
  const int lead = rank - int(shape.size());
  int64_t acc = 1;
  for (int d = 0; d < rank; ++d) out[d] = 0;
  for (int d = int(shape.size()) - 1; d >= 0; --d) {
    out[d + lead] = shape[d] == 1 ? 0 : acc;
    acc *= shape[d];
  }
}

// Offsets of flat output index i for up to three operands (row-major coordinates over l.size).
__device__ void offsets(const Strided& l, int64_t i, int64_t& o0, int64_t& o1, int64_t& o2) {
  o0 = o1 = o2 = 0;
  for (int d = l.rank - 1; d >= 0; --d) {
    const int64_t q = i / l.size[d], idx = i - q * l.size[d];
    o0 += idx * l.s0[d];
    o1 += idx * l.s1[d];
    o2 += idx * l.s2[d];
    i = q;
  }
}

__global__ void copy_along_dim_kernel(const float* src, int64_t src_dim, int64_t src_start, float* dst,
                                      int64_t dst_dim, int64_t dst_start, int64_t run, int64_t inner, int64_t n) {
  MSMIX_GRID_LOOP(i, n) {
    const int64_t o = i / run, r = i - o * run;
    dst[(o * dst_dim + dst_start) * inner + r] = src[(o * src_dim + src_start) * inner + r];
  }
}

__global__ void index_select_kernel(const float* x, int64_t x_dim, int64_t inner, const float* index, int64_t n,
                                    float* out, int64_t total) {
  MSMIX_GRID_LOOP(i, total) {
    const int64_t r = i / inner, c = i - r * inner;  // r = o * n + j
    const int64_t o = r / n, j = r - o * n;
    out[i] = x[(o * x_dim + int64_t(index[j])) * inner + c];
  }
}

// s0: x's strides over index's coordinates, 0 at `dim`; s1[0]: x's stride of `dim`.
__global__ void gather_kernel(const float* x, const float* index, float* out, int64_t n, Strided l) {
  MSMIX_GRID_LOOP(i, n) {
    int64_t ox, unused1, unused2;
    offsets(l, i, ox, unused1, unused2);
    out[i] = x[ox + int64_t(index[i]) * l.s1[0]];
  }
}

__global__ void where_kernel(const float* cond, const float* a, const float* b, float* out, int64_t n, Strided l) {
  MSMIX_GRID_LOOP(i, n) {
    int64_t oc, oa, ob;
    offsets(l, i, oc, oa, ob);
    out[i] = cond[oc] != 0 ? a[oa] : b[ob];
  }
}

__global__ void where_same_shape_kernel(const float* cond, const float* a, const float* b, float* out, int64_t n) {
  MSMIX_GRID_LOOP(i, n) out[i] = cond[i] != 0 ? a[i] : b[i];
}

// s0: x's stride of each output dim.
__global__ void permute_kernel(const float* x, float* out, int64_t n, Strided l) {
  MSMIX_GRID_LOOP(i, n) {
    int64_t ox, unused1, unused2;
    offsets(l, i, ox, unused1, unused2);
    out[i] = x[ox];
  }
}

}  // namespace

void copy_along_dim(const float* src, int64_t src_dim, int64_t src_start, float* dst, int64_t dst_dim,
                    int64_t dst_start, int64_t outer, int64_t count, int64_t inner) {
  const int64_t run = count * inner, n = outer * run;
  if (n == 0) return;
  copy_along_dim_kernel<<<blocks_for(n), kThreads>>>(src, src_dim, src_start, dst, dst_dim, dst_start, run, inner,
                                                     n);
  CUDA_CHECK_LAUNCH("copy_along_dim_kernel");
}

void index_select_forward(const float* x, int64_t outer, int64_t x_dim, int64_t inner, const float* index,
                          int64_t n, float* out) {
  const int64_t total = outer * n * inner;
  if (total == 0) return;
  index_select_kernel<<<blocks_for(total), kThreads>>>(x, x_dim, inner, index, n, out, total);
  CUDA_CHECK_LAUNCH("index_select_kernel");
}

void gather_forward(const float* x, const Shape& x_shape, const float* index, const Shape& index_shape, int64_t dim,
                    float* out) {
  const int64_t n = shape_numel(index_shape);
  if (n == 0) return;
  check_rank("gather", index_shape);
  const std::vector<int64_t> xs = contiguous_strides(x_shape);
  Strided l;
  l.rank = int(index_shape.size());
  for (int d = 0; d < l.rank; ++d) {
    l.size[d] = index_shape[d];
    l.s0[d] = d == dim ? 0 : xs[d];
    l.s1[d] = l.s2[d] = 0;
  }
  l.s1[0] = xs[dim];
  gather_kernel<<<blocks_for(n), kThreads>>>(x, index, out, n, l);
  CUDA_CHECK_LAUNCH("gather_kernel");
}

void where_forward(const float* cond, const Shape& cond_shape, const float* a, const Shape& a_shape, const float* b,
                   const Shape& b_shape, float* out, const Shape& out_shape) {
  const int64_t n = shape_numel(out_shape);
  if (n == 0) return;
  if (cond_shape == out_shape && a_shape == out_shape && b_shape == out_shape) {
    where_same_shape_kernel<<<blocks_for(n), kThreads>>>(cond, a, b, out, n);
    CUDA_CHECK_LAUNCH("where_same_shape_kernel");
    return;
  }
  check_rank("where", out_shape);
  Strided l;
  l.rank = int(out_shape.size());
  for (int d = 0; d < l.rank; ++d) l.size[d] = out_shape[d];
  broadcast_strides(cond_shape, l.rank, l.s0);
  broadcast_strides(a_shape, l.rank, l.s1);
  broadcast_strides(b_shape, l.rank, l.s2);
  where_kernel<<<blocks_for(n), kThreads>>>(cond, a, b, out, n, l);
  CUDA_CHECK_LAUNCH("where_kernel");
}

void permute(const float* x, const Shape& x_shape, const std::vector<int64_t>& perm, float* out) {
  const int64_t n = shape_numel(x_shape);
  if (n == 0) return;
  check_rank("permute", x_shape);
  const std::vector<int64_t> xs = contiguous_strides(x_shape);
  Strided l;
  l.rank = int(perm.size());
  for (int k = 0; k < l.rank; ++k) {
    l.size[k] = x_shape[perm[k]];
    l.s0[k] = xs[perm[k]];
    l.s1[k] = l.s2[k] = 0;
  }
  permute_kernel<<<blocks_for(n), kThreads>>>(x, out, n, l);
  CUDA_CHECK_LAUNCH("permute_kernel");
}

}  // namespace msmix::cuda
