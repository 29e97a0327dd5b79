// MS-Mix's pair selection (SASS; twin: ops/cpu/pair_selection.h) as one block's kernel body, written once for two
// compilers (ops/cuda/block_code.h): nvcc builds it into ops/cuda/pair_selection.cu's kernel, and
// tests/ops/test_pair_selection_block.cpp runs the same code on the CPU against the twin. The contract is equality
// with the twin, bit for bit, on every input: NaN entries, ties, the fallback pool, B = 1.
//
// Launch: one block of kThreads threads (any multiple of 32 up to 1024 gives the same result), shared memory
// shared_floats(threads), device scratch workspace_floats(B). B in [1, 4096]: positions p = i B + j < 2^24 are
// held exactly as floats. S' is never stored: each pass recomputes an entry's S' from the similarity with the
// twin's float operations (rn::, no FMA contraction). Each thread owns a contiguous chunk of the B * B positions,
// so a count per thread and an exclusive scan across threads give every candidate its row-major place. Passes:
//   1. lo, hi of the off-diagonal entries (min and max are order-free; a NaN never wins, as in the twin);
//   2. count S' > delta, scan, 3. write those positions: the pool when there are at least B;
//   else the fallback: the K = min(2B, B(B-1)/2) largest of the strict upper triangle, by 32 bisection passes
//   for the K-th largest order key, one pass to count the keys above and equal to it, one to collect the K in
//   position order, then each one placed at its rank (key down, position up: the twin's stable sort).
// Then all threads turn the draws into indices, one thread runs the Fisher-Yates swaps (sequential by nature, at
// most B), all threads pick the pairs, and one thread sums their S' in pair order in double, as the twin.
// Bound: one SM does it all, 3 passes over the B * B entries (35 in the fallback, K^2 compares) and at most B
// sequential swaps: quick at MS-Mix's batch sizes (tens to hundreds), slow but exact up to 4096 (not timed on a GPU).
#pragma once
#include <cfloat>
#include <cstdint>
#include <cstring>

#include "ops/cpu/pair_selection.h"
#include "ops/cuda/block_code.h"

namespace msmix::pair_selection_block {

// Threads of the launch: the block alone does all the work; 16 warps keep the SM busy and leave each thread
// the registers it needs.
constexpr int kThreads = 512;

// Shared memory (floats): two doubles per warp, the warp totals of a block scan.
constexpr int64_t shared_floats(int threads) { return 4 * ((threads + 31) / 32); }

// The workspace (floats, device memory): the pool (the candidates above delta, up to B(B-1), or the fallback's
// K <= 2B), then [2B] the fallback's chosen positions in position order and [2B] their S', then per pair [B] its
// draw's index into the pool and [B] its S'.
MSMIX_HOST_DEVICE constexpr int64_t pool_floats(int64_t B) { return B * (B - 1) > 2 * B ? B * (B - 1) : 2 * B; }
MSMIX_HOST_DEVICE constexpr int64_t workspace_floats(int64_t B) { return pool_floats(B) + 6 * B; }

// A strictly monotone map of S' onto unsigned keys for the fallback's order: NaN lowest (0, as the twin's
// `larger` puts it below every number; all NaNs equal, so position decides), -0 equal to +0.
MSMIX_BLOCK_FN uint32_t order_key(float s) {
  if (s != s) return 0;
  uint32_t b;
#ifdef __CUDACC__
  b = __float_as_uint(s);
#else
  memcpy(&b, &s, sizeof b);
#endif
  if ((b << 1) == 0) b = 0;  // -0 as +0
  return b & 0x80000000u ? ~b : b | 0x80000000u;
}

// cpu::draw_value: draw k's 64 bits from four floats of 16 bits each, most significant first.
MSMIX_BLOCK_FN uint64_t draw_value(const float* draws, int64_t k) {
  uint64_t r = 0;
  for (int p = 0; p < cpu::kDrawParts; ++p) r = (r << 16) | uint64_t(draws[k * cpu::kDrawParts + p]);
  return r;
}

// S' of an off-diagonal entry x, as cpu::normalize_similarity computes it.
struct Normalized {
  float lo, hi;
  bool flat;
  MSMIX_BLOCK_FN float operator()(float x) const { return flat ? 0.5f : rn::div(rn::sub(x, lo), rn::sub(hi, lo)); }
};

// Calls f(p) for each position p = i B + j in [begin, end) with i != j (upper: i < j), in position order.
template <class F>
MSMIX_BLOCK_FN void for_each_entry(int64_t begin, int64_t end, int64_t B, bool upper, F&& f) {
  for (int64_t i = begin / B; i < B && i * B < end; ++i) {
    const int64_t row = i * B, stop = end - row < B ? end - row : B;
    int64_t j = begin > row ? begin - row : 0;
    if (upper && j <= i) j = i + 1;
    for (; j < stop; ++j)
      if (j != i) f(row + j);
  }
}

// Exclusive prefix sums over the block's threads, in thread order, of M counts per thread (v, replaced by the
// sums before it), and the block's totals. Counts in doubles: exact (at most 2^24), and a shuffle takes them.
// threads() a multiple of 32; scratch: M doubles per warp, in shared memory. All threads of the block call it.
template <int M, class Block>
MSMIX_BLOCK_FN void block_scan(const Block& blk, double (&v)[M], double (&total)[M], double* scratch) {
  const int lane = blk.thread() % 32, warp = blk.thread() / 32, warps = blk.threads() / 32;
  double sum[M], before[M];
  for (int m = 0; m < M; ++m) sum[m] = v[m], before[m] = 0;
  // Butterfly: after step o, sum holds the total of the lane's aligned group of 2o lanes, before the part of
  // it below the lane.
  for (int o = 1; o < 32; o <<= 1)
    for (int m = 0; m < M; ++m) {
      const double other = blk.shfl_xor(sum[m], o);
      if (lane & o) before[m] += other;
      sum[m] += other;
    }
  blk.sync();  // the previous call's readers are done with scratch
  if (lane == 0)
    for (int m = 0; m < M; ++m) scratch[warp * M + m] = sum[m];
  blk.sync();
  for (int m = 0; m < M; ++m) total[m] = 0, v[m] = before[m];
  for (int w = 0; w < warps; ++w)
    for (int m = 0; m < M; ++m) {
      total[m] += scratch[w * M + m];
      if (w < warp) v[m] += scratch[w * M + m];
    }
}

// The block's min of lo and max of hi (no NaN in either); every thread gets them. scratch: 2 floats per warp.
template <class Block>
MSMIX_BLOCK_FN void block_min_max(const Block& blk, float& lo, float& hi, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) {
    const float l = blk.shfl_xor(lo, o), h = blk.shfl_xor(hi, o);
    lo = l < lo ? l : lo;
    hi = hi < h ? h : hi;
  }
  const int lane = blk.thread() % 32, warp = blk.thread() / 32, warps = blk.threads() / 32;
  blk.sync();
  if (lane == 0) scratch[2 * warp] = lo, scratch[2 * warp + 1] = hi;
  blk.sync();
  lo = scratch[0], hi = scratch[1];
  for (int w = 1; w < warps; ++w) {
    lo = scratch[2 * w] < lo ? scratch[2 * w] : lo;
    hi = hi < scratch[2 * w + 1] ? scratch[2 * w + 1] : hi;
  }
}

// The fallback pool into pool[0, K), K = min(2B, B(B-1)/2): the upper triangle's K largest S', largest first,
// ties by position, NaN last. Returns K. [begin, end): the thread's chunk. All threads call it.
template <class Block>
MSMIX_BLOCK_FN int64_t fallback_pool(const Block& blk, const float* similarity, int64_t B, const Normalized& norm,
                                     int64_t begin, int64_t end, float* pool, float* staged, float* staged_s,
                                     double* scratch) {
  const int64_t upper = B * (B - 1) / 2, K = 2 * B < upper ? 2 * B : upper;
  if (K == 0) return 0;  // B = 1
  // The K-th largest key th: the largest with at least K keys >= th, set bit by bit from the top.
  uint32_t th = 0;
  for (int bit = 31; bit >= 0; --bit) {
    const uint32_t candidate = th | (1u << bit);
    int64_t local = 0;
    for_each_entry(begin, end, B, true, [&](int64_t p) { local += order_key(norm(similarity[p])) >= candidate; });
    double count[1] = {double(local)}, total[1];
    block_scan<1>(blk, count, total, scratch);
    if (total[0] >= double(K)) th = candidate;
  }
  // Chosen: every key above th, and the first `need` keys equal to th in position order (need >= 1).
  int64_t above = 0, equal = 0;
  for_each_entry(begin, end, B, true, [&](int64_t p) {
    const uint32_t k = order_key(norm(similarity[p]));
    above += k > th;
    equal += k == th;
  });
  double before[2] = {double(above), double(equal)}, total[2];
  block_scan<2>(blk, before, total, scratch);
  const int64_t need = K - int64_t(total[0]), equal_before = int64_t(before[1]);
  int64_t at = int64_t(before[0]) + (equal_before < need ? equal_before : need), e = equal_before;
  for_each_entry(begin, end, B, true, [&](int64_t p) {
    const float s = norm(similarity[p]);
    const uint32_t k = order_key(s);
    if (k > th || (k == th && e++ < need)) staged[at] = float(p), staged_s[at] = s, ++at;
  });
  blk.sync();  // staged complete
  // staged is in position order: an entry's rank is the count of larger keys and of equal keys staged before it.
  for (int64_t c = blk.thread(); c < K; c += blk.threads()) {
    const uint32_t kc = order_key(staged_s[c]);
    int64_t rank = 0;
    for (int64_t d = 0; d < K; ++d) {
      const uint32_t kd = order_key(staged_s[d]);
      rank += kd > kc || (kd == kc && d < c);
    }
    pool[rank] = staged[c];
  }
  return K;
}

// cpu::select_pairs on the device: similarity [B, B], draws [B, cpu::kDrawParts] (unread at B = 1), pairs [2, B],
// stats [cpu::kSelectionStats], workspace [workspace_floats(B)]; one block, shared_floats(threads()).
template <class Block>
MSMIX_BLOCK_FN void select_pairs(const Block& blk, const float* similarity, int64_t B, float delta, const float* draws,
                                 float* pairs, float* stats, float* workspace) {
  double* scratch = reinterpret_cast<double*>(blk.shared());
  const int t = blk.thread(), T = blk.threads();
  const int64_t N = B * B, begin = N * t / T, end = N * (t + 1) / T;
  float* pool = workspace;
  float* staged = pool + pool_floats(B);
  float* staged_s = staged + 2 * B;
  float* index = staged_s + 2 * B;
  float* pair_s = index + B;

  // 1. The off-diagonal range, and S' from it.
  float lo = FLT_MAX, hi = -FLT_MAX;
  for_each_entry(begin, end, B, false, [&](int64_t p) {
    const float x = similarity[p];
    lo = x < lo ? x : lo;  // std::min(lo, x) and std::max(hi, x): a NaN never wins
    hi = hi < x ? x : hi;
  });
  // The block may find -0 where the twin finds +0 (or the reverse): that flips only the sign of a zero S', which
  // every comparison, the order key and the (+0-started) sum ignore.
  block_min_max(blk, lo, hi, reinterpret_cast<float*>(scratch));
  const Normalized norm{lo, hi, B < 2 || !(rn::sub(hi, lo) > 1e-8f)};

  // 2. The candidates above delta, in row-major order.
  int64_t local = 0;
  for_each_entry(begin, end, B, false, [&](int64_t p) { local += norm(similarity[p]) > delta; });
  double before[1] = {double(local)}, total[1];
  block_scan<1>(blk, before, total, scratch);
  const int64_t above = int64_t(total[0]);
  int64_t n;
  if (above >= B) {  // the same branch on every thread
    int64_t at = int64_t(before[0]);
    for_each_entry(begin, end, B, false, [&](int64_t p) {
      if (norm(similarity[p]) > delta) pool[at++] = float(p);
    });
    n = above;
  } else {
    n = fallback_pool(blk, similarity, B, norm, begin, end, pool, staged, staged_s, scratch);
  }

  // 3. cpu::shuffle_candidates: a partial Fisher-Yates keeping min(n, B), then draws with replacement.
  const int64_t keep = n < B ? n : B;
  if (n > 0)
    for (int64_t k = t; k < B; k += T) {
      const uint64_t r = draw_value(draws, k);
      index[k] = float(k < keep ? k + int64_t(r % uint64_t(n - k)) : int64_t(r % uint64_t(n)));
    }
  blk.sync();  // the pool and the indices complete
  if (t == 0)
    for (int64_t k = 0; k < keep; ++k) {
      const int64_t o = int64_t(index[k]);
      const float a = pool[k];
      pool[k] = pool[o];
      pool[o] = a;
    }
  blk.sync();  // the swaps done
  for (int64_t k = t; k < B; k += T) {
    const int64_t p = n == 0 ? 0 : int64_t(pool[k < keep ? k : int64_t(index[k])]);  // B = 1: (0, 0)
    const int64_t i = p / B, j = p - i * B;
    pairs[k] = float(i);
    pairs[B + k] = float(j);
    pair_s[k] = i == j ? 0.0f : norm(similarity[p]);
  }
  blk.sync();  // every pair's S'
  if (t == 0) {
    double sum = 0;  // in pair order, as the twin
    for (int64_t k = 0; k < B; ++k) sum += double(pair_s[k]);
    stats[0] = float(above);
    stats[1] = above < B ? 1.0f : 0.0f;
    stats[2] = float(n);
    stats[3] = float(sum / double(B));
  }
}

}  // namespace msmix::pair_selection_block
