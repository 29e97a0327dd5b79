#include "ops/cpu/index.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace msmix::cpu {
namespace {

constexpr int64_t kParallelMin = 1 << 15;  // elements moved; below this, threads cost more than they save
constexpr int64_t kColumnBlock = 1024;     // scatter-add work item: one outer slab x this many inner columns

int64_t product(const Shape& shape, int64_t begin, int64_t end) {
  int64_t p = 1;
  for (int64_t d = begin; d < end; ++d) p *= shape[d];
  return p;
}

// Offset in x of each position of index's dims [begin, end) (row-major over those dims); x and index have the
// same rank and index.size(d) <= x.size(d), so the map is one-to-one.
std::vector<int64_t> offsets_in_x(const Shape& index_shape, const std::vector<int64_t>& x_strides, int64_t begin,
                                  int64_t end) {
  std::vector<int64_t> offsets(size_t(product(index_shape, begin, end)));
  for (int64_t p = 0; p < int64_t(offsets.size()); ++p) {
    int64_t rest = p, offset = 0;
    for (int64_t d = end - 1; d >= begin; --d) {
      offset += (rest % index_shape[d]) * x_strides[d];
      rest /= index_shape[d];
    }
    offsets[size_t(p)] = offset;
  }
  return offsets;
}

// Per-dim strides of an operand in out's index space: 0 where it is broadcast (size 1 or missing).
std::vector<int64_t> broadcast_strides(const Shape& shape, int64_t rank) {
  std::vector<int64_t> strides(size_t(rank), 0);
  int64_t lead = rank - int64_t(shape.size()), acc = 1;
  for (int64_t d = int64_t(shape.size()) - 1; d >= 0; --d) {
    strides[size_t(d + lead)] = shape[d] == 1 ? 0 : acc;
    acc *= shape[d];
  }
  return strides;
}

}  // namespace

int64_t find_bad_index(const float* index, int64_t n, int64_t limit) {
  for (int64_t i = 0; i < n; ++i) {
    float v = index[i];
    // NaN fails every comparison, so it is caught too; double keeps limits above 2^24 exact.
    if (!(v >= 0 && double(v) < double(limit) && v == std::floor(v))) return i;
  }
  return -1;
}

void copy_along_dim(const float* src, int64_t src_dim, int64_t src_start, float* dst, int64_t dst_dim,
                    int64_t dst_start, int64_t outer, int64_t count, int64_t inner) {
  int64_t run = count * inner;  // contiguous floats per outer slab on both sides
  if (run == 0 || outer == 0) return;
#pragma omp parallel for if (outer > 1 && outer * run > kParallelMin)
  for (int64_t o = 0; o < outer; ++o)
    std::memcpy(dst + (o * dst_dim + dst_start) * inner, src + (o * src_dim + src_start) * inner,
                size_t(run) * sizeof(float));
}

void index_select_forward(const float* x, int64_t outer, int64_t x_dim, int64_t inner, const float* index,
                          int64_t n, float* out) {
  int64_t rows = outer * n;
  if (rows == 0 || inner == 0) return;
#pragma omp parallel for if (rows * inner > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t o = r / n, k = int64_t(index[r % n]);
    const float* src = x + (o * x_dim + k) * inner;
    if (inner == 1) out[r] = src[0];
    else std::memcpy(out + r * inner, src, size_t(inner) * sizeof(float));
  }
}

void index_select_backward(const float* g, int64_t outer, int64_t x_dim, int64_t inner, const float* index,
                           int64_t n, float* gx) {
  // Work items are (outer slab, column block) pairs: each writes only its own columns of its own slab, so no
  // two threads ever add into the same element, whatever the duplicates in index.
  int64_t blocks = (inner + kColumnBlock - 1) / kColumnBlock;
  int64_t items = outer * blocks;
#pragma omp parallel for if (items > 1 && outer * n * inner > kParallelMin)
  for (int64_t item = 0; item < items; ++item) {
    int64_t o = item / blocks, c0 = (item % blocks) * kColumnBlock, c1 = std::min(c0 + kColumnBlock, inner);
    for (int64_t j = 0; j < n; ++j) {
      float* dst = gx + (o * x_dim + int64_t(index[j])) * inner;
      const float* src = g + (o * n + j) * inner;
      for (int64_t c = c0; c < c1; ++c) dst[c] += src[c];
    }
  }
}

// index seen as [outer, n, inner] around dim; outer_off / inner_off map its outer and inner positions to x
// offsets, so x need not have index's sizes outside dim.
void gather_forward(const float* x, const Shape& x_shape, const float* index, const Shape& index_shape, int64_t dim,
                    float* out) {
  int64_t rank = int64_t(index_shape.size());
  int64_t outer = product(index_shape, 0, dim), n = index_shape[dim], inner = product(index_shape, dim + 1, rank);
  if (outer * n * inner == 0) return;
  std::vector<int64_t> x_strides = contiguous_strides(x_shape);
  std::vector<int64_t> outer_off = offsets_in_x(index_shape, x_strides, 0, dim);
  std::vector<int64_t> inner_off = offsets_in_x(index_shape, x_strides, dim + 1, rank);
  int64_t stride = x_strides[dim];
#pragma omp parallel for if (outer * n * inner > kParallelMin)
  for (int64_t r = 0; r < outer * n; ++r) {
    const float* base = x + outer_off[size_t(r / n)];
    const float* idx = index + r * inner;
    float* dst = out + r * inner;
    for (int64_t i = 0; i < inner; ++i) dst[i] = base[int64_t(idx[i]) * stride + inner_off[size_t(i)]];
  }
}

void gather_backward(const float* g, const Shape& index_shape, const float* index, const Shape& x_shape, int64_t dim,
                     float* gx) {
  int64_t rank = int64_t(index_shape.size());
  int64_t outer = product(index_shape, 0, dim), n = index_shape[dim], inner = product(index_shape, dim + 1, rank);
  if (outer * n * inner == 0) return;
  std::vector<int64_t> x_strides = contiguous_strides(x_shape);
  std::vector<int64_t> outer_off = offsets_in_x(index_shape, x_strides, 0, dim);
  std::vector<int64_t> inner_off = offsets_in_x(index_shape, x_strides, dim + 1, rank);
  int64_t stride = x_strides[dim];
  // As index_select_backward: an (outer, column block) item owns the x elements it can write.
  int64_t blocks = (inner + kColumnBlock - 1) / kColumnBlock;
  int64_t items = outer * blocks;
#pragma omp parallel for if (items > 1 && outer * n * inner > kParallelMin)
  for (int64_t item = 0; item < items; ++item) {
    int64_t o = item / blocks, c0 = (item % blocks) * kColumnBlock, c1 = std::min(c0 + kColumnBlock, inner);
    float* base = gx + outer_off[size_t(o)];
    for (int64_t j = 0; j < n; ++j) {
      int64_t r = o * n + j;
      for (int64_t c = c0; c < c1; ++c)
        base[int64_t(index[r * inner + c]) * stride + inner_off[size_t(c)]] += g[r * inner + c];
    }
  }
}

void where_forward(const float* cond, const Shape& cond_shape, const float* a, const Shape& a_shape, const float* b,
                   const Shape& b_shape, float* out, const Shape& out_shape) {
  int64_t rank = int64_t(out_shape.size());
  int64_t n = shape_numel(out_shape);
  if (n == 0) return;
  if (cond_shape == out_shape && a_shape == out_shape && b_shape == out_shape) {
#pragma omp parallel for simd if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) out[i] = cond[i] != 0 ? a[i] : b[i];
    return;
  }
  std::vector<int64_t> sc = broadcast_strides(cond_shape, rank), sa = broadcast_strides(a_shape, rank),
                       sb = broadcast_strides(b_shape, rank);
  // Rows of the last dim are independent; within a row each operand walks (stride 1) or repeats (stride 0).
  int64_t inner = rank ? out_shape[rank - 1] : 1;
  int64_t ic = rank ? sc[rank - 1] : 0, ia = rank ? sa[rank - 1] : 0, ib = rank ? sb[rank - 1] : 0;
  int64_t rows = n / inner;
#pragma omp parallel for if (n > kParallelMin)
  for (int64_t row = 0; row < rows; ++row) {
    int64_t oc = 0, oa = 0, ob = 0, rest = row;
    for (int64_t d = rank - 2; d >= 0; --d) {
      int64_t i = rest % out_shape[d];
      rest /= out_shape[d];
      oc += i * sc[d], oa += i * sa[d], ob += i * sb[d];
    }
    const float *pc = cond + oc, *pa = a + oa, *pb = b + ob;
    float* po = out + row * inner;
    if (ic && ia && ib) {
      for (int64_t i = 0; i < inner; ++i) po[i] = pc[i] != 0 ? pa[i] : pb[i];
    } else {
      for (int64_t i = 0; i < inner; ++i) po[i] = pc[i * ic] != 0 ? pa[i * ia] : pb[i * ib];
    }
  }
}

}  // namespace msmix::cpu
