// CPU kernels for concat/slice, index_select/embedding, gather and where/masked_fill.
// Most of these are memory copies: a tensor is seen as [outer, dim, inner] around the indexed dim, so a run of
// `inner` (or `count * inner`) floats is contiguous and moves with one memcpy.
// Index tensors are float32 holding integers; the ops validate them with find_bad_index before any kernel
// reads them, so kernels cast without checking.
#pragma once
#include <cstdint>

#include "engine/shape.h"

namespace msmix::cpu {

// Position of the first value that is not an integer in [0, limit), or -1 when all are valid.
int64_t find_bad_index(const float* index, int64_t n, int64_t limit);

// dst[o, dst_start + j, :] = src[o, src_start + j, :] for o < outer, j < count; src is [outer, src_dim, inner],
// dst is [outer, dst_dim, inner]. Concat (src_start 0), slice (dst_start 0) and both their backwards.
void copy_along_dim(const float* src, int64_t src_dim, int64_t src_start, float* dst, int64_t dst_dim,
                    int64_t dst_start, int64_t outer, int64_t count, int64_t inner);

// out[o, j, :] = x[o, index[j], :]: x [outer, x_dim, inner], index [n], out [outer, n, inner].
void index_select_forward(const float* x, int64_t outer, int64_t x_dim, int64_t inner, const float* index,
                          int64_t n, float* out);
// gx[o, index[j], :] += g[o, j, :] (gx must hold zeros or a grad to add to). Repeated indices accumulate.
void index_select_backward(const float* g, int64_t outer, int64_t x_dim, int64_t inner, const float* index,
                           int64_t n, float* gx);

// torch.gather along `dim`: out[p] = x[p with its dim coordinate replaced by index[p]] for every position p of
// index (index.size(d) <= x.size(d) for d != dim); out has index's shape.
void gather_forward(const float* x, const Shape& x_shape, const float* index, const Shape& index_shape, int64_t dim,
                    float* out);
// gx[p with dim replaced by index[p]] += g[p]; gx has x's shape and must hold zeros or a grad to add to.
void gather_backward(const float* g, const Shape& index_shape, const float* index, const Shape& x_shape, int64_t dim,
                     float* gx);

// out = cond != 0 ? a : b, each operand broadcast to out_shape (numpy rules, shapes already checked).
// masked_fill passes its value as a rank-0 `a`.
void where_forward(const float* cond, const Shape& cond_shape, const float* a, const Shape& a_shape, const float* b,
                   const Shape& b_shape, float* out, const Shape& out_shape);

}  // namespace msmix::cpu
