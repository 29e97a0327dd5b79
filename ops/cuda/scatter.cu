// The scatter-adds of index_select / embedding backward (gx[o, index[j], :] += g[o, j, :]) and gather backward
// (gx[target(p)] += g[p]). Deterministic by construction, not with atomicAdd: float atomics add in whatever
// order the threads arrive, so a repeated index (a padding id in a batch of embeddings) would give different
// bits from run to run, and this project promises the same numbers for the same seed on the same device.
// Instead the host copies the index back (one small D2H copy, which synchronises), groups the source rows by
// the target row they add into (a stable sort, so each group keeps ascending source order), and uploads that
// plan; then one thread per (outer, target row, column) owns its element of gx and adds its sources in that
// order: the same additions in the same order as the CPU twin, so the results are bit-identical to it.
// Launch: grid-stride over outer * targets * inner. Bound: memory; a target hit by many sources serialises
// in its thread (an accepted imbalance: typical repeats are tens, not thousands). Small index ops without host
// values (MS-Mix's pairs, made on the device) skip the plan: each gx element searches the index itself.
#include <algorithm>
#include <numeric>
#include <vector>

#include "engine/cuda_runtime.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/kernels.h"

namespace msmix::cuda {
namespace {

// plan = [rows U][start U + 1][src n]: target row rows[u] gets source rows src[start[u] .. start[u + 1]).
__global__ void scatter_add_kernel(const float* g, float* gx, const int64_t* plan, int64_t U, int64_t n,
                                   int64_t x_dim, int64_t inner, int64_t total) {
  const int64_t* rows = plan;
  const int64_t* start = plan + U;
  const int64_t* src = plan + 2 * U + 1;
  MSMIX_GRID_LOOP(i, total) {
    const int64_t r = i / inner, c = i - r * inner;  // r = o * U + u
    const int64_t o = r / U, u = r - o * U;
    float* dst = gx + (o * x_dim + rows[u]) * inner + c;
    float acc = *dst;
    for (int64_t s = start[u]; s < start[u + 1]; ++s) acc += g[(o * n + src[s]) * inner + c];
    *dst = acc;
  }
}

// Without a plan: thread (o, r, c) adds every g[o, j, c] with index[j] == r, in ascending j. Its n reads of the
// index hit the same few cache lines in every thread, so for the small n it is given this beats a read back.
__global__ void search_scatter_add_kernel(const float* g, float* gx, const float* index, int64_t n, int64_t x_dim,
                                          int64_t inner, int64_t total) {
  MSMIX_GRID_LOOP(i, total) {
    const int64_t row = i / inner, c = i - row * inner;  // row = o * x_dim + r
    const int64_t o = row / x_dim, r = row - o * x_dim;
    float acc = gx[i];
    for (int64_t j = 0; j < n; ++j)
      if (int64_t(index[j]) == r) acc += g[(o * n + j) * inner + c];
    gx[i] = acc;
  }
}

// gx viewed as [outer, x_dim, inner] and g as [outer, n, inner]: gx[o, target[j], :] += g[o, j, :] in
// ascending j for each target row.
void scatter_add_rows(const float* g, float* gx, const std::vector<int64_t>& target, int64_t outer, int64_t x_dim,
                      int64_t inner) {
  const int64_t n = int64_t(target.size());
  if (outer * n * inner == 0) return;
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t(0));
  std::stable_sort(order.begin(), order.end(), [&](int64_t p, int64_t q) { return target[p] < target[q]; });
  std::vector<int64_t> rows, start;
  for (int64_t s = 0; s < n; ++s) {
    if (s == 0 || target[order[s]] != target[order[s - 1]]) {
      rows.push_back(target[order[s]]);
      start.push_back(s);
    }
  }
  const int64_t U = int64_t(rows.size());
  start.push_back(n);
  std::vector<int64_t> plan;
  plan.reserve(size_t(2 * U + 1 + n));
  plan.insert(plan.end(), rows.begin(), rows.end());
  plan.insert(plan.end(), start.begin(), start.end());
  plan.insert(plan.end(), order.begin(), order.end());
  DeviceBuffer dplan(plan.size() * sizeof(int64_t) / sizeof(float));
  memcpy_host_to_device(dplan.get(), plan.data(), plan.size() * sizeof(int64_t));
  const int64_t total = outer * U * inner;
  scatter_add_kernel<<<blocks_for(total), kThreads>>>(g, gx, reinterpret_cast<const int64_t*>(dplan.get()), U, n,
                                                      x_dim, inner, total);
  CUDA_CHECK_LAUNCH("scatter_add_kernel");
}

// The index values (device floats holding valid integers) as host integers.
std::vector<int64_t> host_indices(const float* index, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  if (n > 0) memcpy_device_to_host(v.data(), index, size_t(n) * sizeof(float));
  return std::vector<int64_t>(v.begin(), v.end());
}

}  // namespace

void index_select_backward(const float* g, int64_t outer, int64_t x_dim, int64_t inner, const float* index,
                           int64_t n, float* gx) {
  if (outer * n * inner == 0) return;
  scatter_add_rows(g, gx, host_indices(index, n), outer, x_dim, inner);
}

void index_select_backward_search(const float* g, int64_t outer, int64_t x_dim, int64_t inner, const float* index,
                                  int64_t n, float* gx) {
  const int64_t total = outer * x_dim * inner;
  if (total == 0 || n == 0) return;
  search_scatter_add_kernel<<<blocks_for(total), kThreads>>>(g, gx, index, n, x_dim, inner, total);
  CUDA_CHECK_LAUNCH("search_scatter_add_kernel");
}

void index_select_backward_host(const float* g, int64_t outer, int64_t x_dim, int64_t inner,
                                const std::vector<int64_t>& index, float* gx) {
  scatter_add_rows(g, gx, index, outer, x_dim, inner);
}

void gather_backward(const float* g, const Shape& index_shape, const float* index, const Shape& x_shape, int64_t dim,
                     float* gx) {
  const int64_t P = shape_numel(index_shape);
  if (P == 0) return;
  // Each index position's flat offset in x: its own coordinates, with dim's replaced by the index value.
  std::vector<int64_t> target = host_indices(index, P);
  const std::vector<int64_t> xs = contiguous_strides(x_shape);
  const int64_t rank = int64_t(index_shape.size());
  for (int64_t p = 0; p < P; ++p) {
    int64_t rest = p, offset = 0;
    for (int64_t d = rank - 1; d >= 0; --d) {
      const int64_t coord = rest % index_shape[d];
      rest /= index_shape[d];
      offset += (d == dim ? target[p] : coord) * xs[d];
    }
    target[p] = offset;
  }
  scatter_add_rows(g, gx, target, 1, shape_numel(x_shape), 1);
}

}  // namespace msmix::cuda
