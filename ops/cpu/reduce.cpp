#include "ops/cpu/reduce.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <omp.h>

#include "ops/cpu/fast_math.h"

namespace msmix::cpu {
namespace {

constexpr int64_t kParallelMin = 1 << 15;  // elements below which threads cost more than they save
// Last-dim sums of few long rows are split into segments of this many elements, summed in parallel and added
// in order. The split depends only on the sizes, so results are the same for any thread count.
constexpr int64_t kSegment = 1 << 16;
// Middle-dim reductions work on column chunks of the output (partial rows stay in L1), and add rows in
// float in groups of kRowGroup before adding each group into a double total, so the error grows with
// kRowGroup + D / kRowGroup terms instead of D (D = 4096: 128 instead of 4095).
constexpr int64_t kColumnChunk = 1024;
constexpr int64_t kRowGroup = 64;

float max_of(const float* row, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t d = 0; d < n; ++d) m = std::isnan(row[d]) || row[d] > m ? row[d] : m;
  return m;
}

void sum_last_dim(const VecKernels& k, const float* x, float* out, int64_t outer, int64_t D) {
  const int64_t segments = (D + kSegment - 1) / kSegment;
  if (segments > 1 && outer < 8) {
    // Few long rows (a full sum): parallel over segments; the segment totals are added in a fixed order.
    std::vector<double> part(size_t(outer * segments));
#pragma omp parallel for
    for (int64_t t = 0; t < outer * segments; ++t) {
      const int64_t o = t / segments, s = t % segments;
      part[size_t(t)] = k.sum(x + o * D + s * kSegment, std::min(kSegment, D - s * kSegment));
    }
    for (int64_t o = 0; o < outer; ++o) {
      double s = 0;
      for (int64_t j = 0; j < segments; ++j) s += part[size_t(o * segments + j)];
      out[o] = float(s);
    }
    return;
  }
  if (D < 16) {  // short rows: a call per row would cost more than the adds
#pragma omp parallel for if (outer * D > kParallelMin)
    for (int64_t o = 0; o < outer; ++o) {
      double s = 0;
      for (int64_t d = 0; d < D; ++d) s += x[o * D + d];
      out[o] = float(s);
    }
    return;
  }
#pragma omp parallel for if (outer * D > kParallelMin)
  for (int64_t o = 0; o < outer; ++o) out[o] = float(k.sum(x + o * D, D));
}

// out[o, i0 : i0 + len] = reduce_d x[o, d, i0 : i0 + len] (row stride `inner`).
void reduce_columns(const VecKernels& k, bool is_max, const float* x, float* out, int64_t D, int64_t inner,
                    int64_t len) {
  if (is_max) {
    for (int64_t i = 0; i < len; ++i) out[i] = -std::numeric_limits<float>::infinity();
    for (int64_t d = 0; d < D; ++d) {
      const float* src = x + d * inner;
      for (int64_t i = 0; i < len; ++i) out[i] = std::isnan(src[i]) || src[i] > out[i] ? src[i] : out[i];
    }
    return;
  }
  if (D <= kRowGroup) {
    std::fill_n(out, len, 0.0f);
    for (int64_t d = 0; d < D; ++d) k.add_into(out, x + d * inner, len);
    return;
  }
  float group[kColumnChunk];
  double total[kColumnChunk] = {};
  for (int64_t d0 = 0; d0 < D; d0 += kRowGroup) {
    std::copy_n(x + d0 * inner, len, group);
    for (int64_t d = d0 + 1; d < std::min(D, d0 + kRowGroup); ++d) k.add_into(group, x + d * inner, len);
    for (int64_t i = 0; i < len; ++i) total[i] += group[i];
  }
  for (int64_t i = 0; i < len; ++i) out[i] = float(total[i]);
}

// The sum of reduce_columns with the rows split among the tasks instead of the columns, for few slabs: each
// task adds a group of kRowGroup whole rows (contiguous, so the reads stream) into its own float partial, then
// the partials are added in double in group order. Per column these are reduce_columns' operations in its
// order, so the result is the same bit for bit, whatever the thread count. (Splitting columns read 512-byte
// pieces of 4 KB rows, and summing dim 0 of [4096, 1024] ran at 0.84x PyTorch on two threads.)
void sum_row_groups(const VecKernels& k, const float* x, float* out, int64_t outer, int64_t D, int64_t inner) {
  const int64_t groups = (D + kRowGroup - 1) / kRowGroup;
  std::vector<float> partial(size_t(outer * groups * inner));
#pragma omp parallel for
  for (int64_t t = 0; t < outer * groups; ++t) {
    const int64_t o = t / groups, d0 = (t % groups) * kRowGroup, d1 = std::min(D, d0 + kRowGroup);
    float* p = partial.data() + t * inner;
    std::copy_n(x + (o * D + d0) * inner, inner, p);
    for (int64_t d = d0 + 1; d < d1; ++d) k.add_into(p, x + (o * D + d) * inner, inner);
  }
  const int64_t chunks = (inner + kColumnChunk - 1) / kColumnChunk;
#pragma omp parallel for
  for (int64_t t = 0; t < outer * chunks; ++t) {
    const int64_t o = t / chunks, i0 = (t % chunks) * kColumnChunk, len = std::min(kColumnChunk, inner - i0);
    double total[kColumnChunk] = {};
    for (int64_t g = 0; g < groups; ++g) {
      const float* p = partial.data() + (o * groups + g) * inner + i0;
      for (int64_t i = 0; i < len; ++i) total[i] += p[i];
    }
    for (int64_t i = 0; i < len; ++i) out[o * inner + i0 + i] = float(total[i]);
  }
}

}  // namespace

void reduce_dim(ReduceOp op, const float* x, float* out, int64_t outer, int64_t D, int64_t inner) {
  const bool is_max = op == ReduceOp::Max;
  const VecKernels& k = vec_kernels();
  if (inner == 1) {
    if (!is_max) return sum_last_dim(k, x, out, outer, D);
#pragma omp parallel for if (outer * D > kParallelMin)
    for (int64_t o = 0; o < outer; ++o) out[o] = max_of(x + o * D, D);
    return;
  }
  const bool parallel = outer * D * inner > kParallelMin;
  const int64_t want_tasks = parallel ? 4 * int64_t(omp_get_max_threads()) : 1;
  if (!is_max && parallel && D > kRowGroup && outer < want_tasks)
    return sum_row_groups(k, x, out, outer, D, inner);
  // Reducing a middle dim: add whole rows of the [D, inner] slab, a chunk of columns at a time. Tasks are
  // (outer, column chunk) pairs, so one slab ([D, inner] with outer 1) still spreads over the threads.
  // Narrower chunks when there are too few tasks for the threads; each column is added in the same order
  // whatever the width, so the result does not depend on the thread count.
  int64_t width = kColumnChunk;
  while (width > 64 && outer * ((inner + width - 1) / width) < want_tasks) width /= 2;
  const int64_t chunks = (inner + width - 1) / width;
#pragma omp parallel for if (parallel)
  for (int64_t t = 0; t < outer * chunks; ++t) {
    const int64_t o = t / chunks, i0 = (t % chunks) * width;
    reduce_columns(k, is_max, x + o * D * inner + i0, out + o * inner + i0, D, inner, std::min(width, inner - i0));
  }
}

}  // namespace msmix::cpu
