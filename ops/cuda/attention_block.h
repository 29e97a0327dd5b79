// The fused attention's CUDA kernel bodies (twin: ops/cpu/attention.h), written once for two compilers
// (ops/cuda/block_code.h): nvcc builds them into ops/cuda/attention.cu's kernels, and
// tests/ops/test_attention_block.cpp runs the same code on the CPU against the CPU twin.
//
// Per (b, h), P = dropout(softmax(q_h scale k_h^T + mask, padded keys -inf)), out_h = P v_h, without storing P;
// the backward recomputes P from q, k and the forward's row stats (max, 1 / sum of exps). Heads sit side by
// side: head h of q [B, L, H D] is columns [h D, (h + 1) D).
// Launch shapes (blocks of kWarps warps, one (b, h) per block and round, grid-stride over such tiles):
//   forward        one warp per query row: lanes take the keys lane, lane + 32, ... of each chunk of K and V
//                  staged in shared memory, each lane runs its own online softmax (running max, sum of exps,
//                  weighted sum of v rows in registers), then the 32 partial states are merged.
//   backward rows  one warp per query row: t = sum_s P dP (softmax's row term, kept in a [B H, L] scratch for
//                  the keys kernel) read off the forward's output as dO . O (the two are equal, dropout
//                  included: sum_s Pd_s (dO . v_s) = dO . sum_s Pd_s v_s), then one pass over the keys for
//                  dq = scale sum_s P (dP - t) k_s.
//   backward keys  one warp per key: lanes take the query rows of each staged chunk of (q scale, dO, stats, t)
//                  and sum dk = sum_l dS q_l scale and dv = sum_l dropout(P) dO_l.
// Every sum has a fixed order (no atomics): the grads are the same bits from run to run. Dropout evaluates
// engine/philox.h on element ((b H + h) L + l) S + s of (seed, offset), as the CPU, so the masks are equal.
// A Philox block costs about a hundred instructions, several times the rest of a pair's work at MulT's head
// width 5, and gives four decisions: so the forward's lanes draw one block each per 128 keys and trade the
// decisions by shuffles (group_decisions), instead of one block per key; given AttentionArgs::dropout_bits,
// the forward writes each decision down (a bit per pair), and the backward kernels read the bits instead of
// drawing again.
// Head widths up to 64, held as register rows of DM columns (columns past D are 0). A query row with no open
// key is NaN, as on the CPU.
#pragma once
#include <cstdint>
#include <type_traits>

#include "engine/philox.h"
#include "ops/cpu/attention.h"
#include "ops/cuda/block_code.h"

namespace msmix::attention_block {

using cpu::AttentionArgs;
using cpu::AttentionDims;

constexpr int kWarps = 8;  // query rows (or keys) per block: one per warp
constexpr int kBlockThreads = kWarps * 32;

// Keys staged per chunk for head widths up to DM: the shared arrays stay under 38 KiB (the keys kernel at
// DM = 16 the largest; attention.cu checks every width), under the 48 KiB a launch may use without opting in.
// Narrow heads (MulT's 5 and 10) take long chunks: each costs two syncs and a staging read whose latency nothing
// hides, for only 2 D multiply-adds a pair.
template <int DM>
struct ChunkRows {
  static constexpr int value = DM <= 16 ? 256 : DM <= 32 ? 128 : 64;
};
// Query rows per chunk of the keys kernel, likewise.
template <int DM>
struct QueryChunk {
  static constexpr int value = DM <= 16 ? 256 : 64;
};

// Floats per staged row: DM rounded up to an odd number, so that the 32 lanes reading one row each hit 32
// distinct shared-memory banks.
template <int DM>
struct Stride {
  static constexpr int value = DM % 2 ? DM : DM + 1;
};
template <int DM>
using StagedRow = float[Stride<DM>::value];

// Shared memory (floats) of the forward and backward-rows kernels (a chunk of k and v rows), and of the keys
// kernel (a chunk of q scale and dO rows, then their row max, 1 / sum and t).
template <int DM>
constexpr int rows_shared_floats() {
  return 2 * ChunkRows<DM>::value * Stride<DM>::value;
}
template <int DM>
constexpr int keys_shared_floats() {
  return 2 * QueryChunk<DM>::value * Stride<DM>::value + 3 * QueryChunk<DM>::value;
}

// Calls run(std::integral_constant<int, DM>{}) with the register width DM >= D (D <= 64) the kernels are built
// for: exactly 5 or 10 for MOSI's MulT (50 or 100 wide over 10 heads: no padded columns to multiply), else 8,
// 16, 32 or 64. Host code.
template <class Run>
void with_register_width(int64_t D, Run run) {
  if (D == 5) return run(std::integral_constant<int, 5>{});
  if (D == 10) return run(std::integral_constant<int, 10>{});
  if (D <= 8) return run(std::integral_constant<int, 8>{});
  if (D <= 16) return run(std::integral_constant<int, 16>{});
  if (D <= 32) return run(std::integral_constant<int, 32>{});
  return run(std::integral_constant<int, 64>{});
}
constexpr int kMaxRegisterWidth = 64;

// Is element i of the dropout stream kept? Word i % 4 of Philox block i / 4, as philox::uniform, picked without
// indexing the array by a run-time value (that would put it in local memory).
MSMIX_BLOCK_FN bool kept(const AttentionArgs& a, int64_t i) {
  const philox::U32x4 r = philox::block(a.seed, a.offset, uint64_t(i) / 4);
  const int w = int(i & 3);
  const uint32_t word = w == 0 ? r.v[0] : w == 1 ? r.v[1] : w == 2 ? r.v[2] : r.v[3];
  return philox::to_unit(word) >= a.dropout_p;
}

// The dropout bits (AttentionArgs::dropout_bits): per query row (b H + h) L + l, dropout_row_words(S) words laid
// out so that lane j of a warp, which takes the keys s = j, j + 32, ... (for_each_key), owns the words
// (s / 1024) 32 + j, key s at bit (s % 1024) / 32: a lane writes its words alone, without a warp vote. A
// masked key's bit is 0 (the backward skips it, or its row is NaN whatever the bit).
MSMIX_HOST_DEVICE constexpr int64_t dropout_row_words(int64_t S) { return 32 * ((S + 1023) / 1024); }
MSMIX_BLOCK_FN int64_t dropout_word(int64_t row, int64_t S, int64_t s) {
  return row * dropout_row_words(S) + (s / 1024) * 32 + s % 32;
}
MSMIX_BLOCK_FN uint32_t dropout_bit(int64_t s) { return 1u << ((s % 1024) / 32); }

// Was element (row, s) kept? The forward's bit when it wrote them, else Philox drawn again.
MSMIX_BLOCK_FN bool kept_at(const AttentionArgs& a, int64_t S, int64_t row, int64_t s) {
  if (a.dropout_bits) return (a.dropout_bits[dropout_word(row, S, s)] & dropout_bit(s)) != 0;
  return kept(a, row * S + s);
}

// sum_j x[j] y[j] over the DM padded columns (columns past D are 0 in both), in column order with explicit
// fmaf, so every kernel computes a score or a dP with the same bits.
template <int DM>
MSMIX_BLOCK_FN float dot(const float* x, const float* y) {
  float acc = 0.0f;
  MSMIX_UNROLL
  for (int j = 0; j < DM; ++j) acc = fmaf(x[j], y[j], acc);
  return acc;
}

// Score of query row l and key s from the dot product of q scale and k: + mask[l, s], -inf where s is padding.
// mask_row: the mask's row of l (S floats) or null; pad_row: batch b's padding row (S floats) or null.
MSMIX_BLOCK_FN float masked(float x, const float* mask_row, const float* pad_row, int64_t s) {
  if (mask_row) x += mask_row[s];
  if (pad_row && pad_row[s] != 0.0f) x = -INFINITY;
  return x;
}

// The mask row of query row l of head bh, or null: [L, S] shared by all heads, or [B H, L, S].
MSMIX_BLOCK_FN const float* mask_row_of(const AttentionArgs& a, const AttentionDims& d, int64_t bh, int64_t l) {
  if (!a.attn_mask) return nullptr;
  return a.attn_mask + ((a.mask_per_head ? bh * d.L : 0) + l) * d.S;
}

// Rows [r0, r0 + n) of head h of x [B, N, H D] (batch b) into dst[r][j], times `mul`; columns j >= D (up to DM)
// and rows past n (up to R) are 0. All threads of the block call it.
template <int DM, int R, class Block>
MSMIX_BLOCK_FN void stage_rows(const Block& blk, const float* x, const AttentionDims& d, int64_t N, int64_t b,
                               int64_t h, int64_t r0, int n, float mul, StagedRow<DM>* dst) {
  const int64_t E = d.H * d.D;
  for (int i = blk.thread(); i < R * DM; i += blk.threads()) {
    const int r = i / DM, j = i % DM;
    dst[r][j] = r < n && j < d.D ? x[(b * N + r0 + r) * E + h * d.D + j] * mul : 0.0f;
  }
}

// The chunk of keys [s0, s0 + R) of head h (batch b) into ks and vs, between two syncs (the previous chunk's
// readers are done; this one is complete). Returns how many keys it holds. All threads of the block call it.
template <int DM, class Block>
MSMIX_BLOCK_FN int stage_keys(const Block& blk, const AttentionArgs& a, const AttentionDims& d, int64_t b, int64_t h,
                              int64_t s0, StagedRow<DM>* ks, StagedRow<DM>* vs) {
  constexpr int R = ChunkRows<DM>::value;
  const int n = int(d.S - s0 < R ? d.S - s0 : R);
  blk.sync();
  stage_rows<DM, R>(blk, a.k, d, d.S, b, h, s0, n, 1.0f, ks);
  stage_rows<DM, R>(blk, a.v, d, d.S, b, h, s0, n, 1.0f, vs);
  blk.sync();
  return n;
}

// Calls visit(r, s, x) for each key s of this lane (lane, lane + 32, ... of every staged chunk; k and v rows at
// ks[r], vs[r]) with x its score against the query row qs (masked; -inf where closed). Before the keys from s
// at each chunk's start and every 128 keys into it, all 32 lanes call group(s), so it may shuffle; the visits
// until the next call have r % 128 = lane + 32 i, i < 4. Every thread of the block stages; only an active warp
// visits.
template <int DM, class Block, class Group, class Visit>
MSMIX_BLOCK_FN void for_each_key(const Block& blk, const AttentionArgs& a, const AttentionDims& d, int64_t b, int64_t h,
                                 bool active, const float* qs, const float* mask_row, const float* pad_row,
                                 StagedRow<DM>* ks, StagedRow<DM>* vs, Group group, Visit visit) {
  constexpr int R = ChunkRows<DM>::value;
  const int lane = blk.thread() % 32;
  for (int64_t s0 = 0; s0 < d.S; s0 += R) {
    const int n = stage_keys<DM>(blk, a, d, b, h, s0, ks, vs);
    if (!active) continue;
    for (int r0 = 0; r0 < n; r0 += 32) {  // the same trip count on every lane: group() may shuffle
      if (r0 % 128 == 0) group(s0 + r0);
      const int r = r0 + lane;
      if (r >= n) continue;
      const int64_t s = s0 + r;
      visit(r, s, masked(dot<DM>(qs, ks[r]), mask_row, pad_row, s));
    }
  }
}

// The dropout decisions of elements e0 .. e0 + 127 of a warp's row (keys s .. s + 127, e0 = stream + s), one
// Philox block per lane instead of one per key: lane L draws block e0 / 4 + L (and every lane the block after
// those when e0 is not a multiple of 4), keeps its four decisions as bits, and the lanes trade them. Returns, on
// lane j, bit i set when element e0 + j + 32 i is kept (i < 4): the decisions kept() makes, element by element.
template <class Block>
MSMIX_BLOCK_FN uint32_t group_decisions(const Block& blk, const AttentionArgs& a, int64_t e0) {
  const int lane = blk.thread() % 32;
  const int64_t first = e0 / 4;
  const int shift = int(e0 - 4 * first);
  auto kept_words = [&](int64_t block) {  // bit w: word w of the block is kept
    const philox::U32x4 r = philox::block(a.seed, a.offset, uint64_t(block));
    uint32_t m = 0;
    MSMIX_UNROLL
    for (int w = 0; w < 4; ++w) m |= uint32_t(philox::to_unit(r.v[w]) >= a.dropout_p) << w;
    return m;
  };
  const uint32_t mine = kept_words(first + lane), after = shift ? kept_words(first + 32) : 0u;
  uint32_t out = 0;
  MSMIX_UNROLL
  for (int i = 0; i < 4; ++i) {
    const int e = shift + lane + 32 * i, q = e / 4;  // element e0 + lane + 32 i: word e % 4 of block first + q
    const uint32_t from = uint32_t(blk.shfl(float(mine), q % 32));  // every lane takes part; 4 bits are exact
    out |= ((q < 32 ? from : after) >> (e % 4) & 1u) << i;
  }
  return out;
}

// Warp sum by xor butterfly: a + b == b + a in IEEE, so every lane ends with the same bits.
template <class Block>
MSMIX_BLOCK_FN float warp_sum(const Block& blk, float v) {
  for (int o = 16; o > 0; o >>= 1) v += blk.shfl_xor(v, o);
  return v;
}

// ---- forward: grid-stride over tiles (bh, block of kWarps query rows); warp w takes row l = l0 + w.
// out [B, L, H D]; stats [B H, L, 2] = (row max, 1 / sum of exps). Shared: rows_shared_floats<DM>().
template <int DM, class Block>
MSMIX_BLOCK_FN void forward(const Block& blk, const AttentionArgs& a, const AttentionDims& d, float* out,
                            float* stats) {
  constexpr int R = ChunkRows<DM>::value;
  StagedRow<DM>* ks = reinterpret_cast<StagedRow<DM>*>(blk.shared());  // a chunk of keys: k and v rows of head h
  StagedRow<DM>* vs = ks + R;
  const int warp = blk.thread() / 32, lane = blk.thread() % 32;
  const int64_t E = d.H * d.D, row_tiles = (d.L + kWarps - 1) / kWarps, tiles = d.B * d.H * row_tiles;
  for (int64_t tile = blk.block(); tile < tiles; tile += blk.blocks()) {  // the same tile for the whole block
    const int64_t bh = tile / row_tiles, b = bh / d.H, h = bh % d.H;
    const int64_t l = (tile % row_tiles) * kWarps + warp;
    const bool active = l < d.L;  // a warp past the last row still stages and syncs with the others
    float qs[DM];                 // this row of q times scale, 0 past D (as the CPU: rounded to float first)
    MSMIX_UNROLL
    for (int j = 0; j < DM; ++j) qs[j] = active && j < d.D ? a.q[(b * d.L + l) * E + h * d.D + j] * a.scale : 0.0f;
    const float* mask_row = active ? mask_row_of(a, d, bh, l) : nullptr;
    const float* pad_row = a.key_padding ? a.key_padding + b * d.S : nullptr;
    const int64_t row = bh * d.L + l, stream = row * d.S;  // dropout element of (b, h, l, 0)
    // This lane's online softmax over its keys: max m, sum of exp(x - m), sum of exp(x - m) * kept v rows.
    float m = -INFINITY, sum = 0.0f, acc[DM];
    MSMIX_UNROLL
    for (int j = 0; j < DM; ++j) acc[j] = 0.0f;
    // The dropout bits of this lane's keys in the current span of 1024 (written when the span changes).
    const bool record_bits = a.dropout && a.dropout_bits;
    int64_t span = -1;
    uint32_t bits = 0;
    uint32_t decisions = 0;  // group_decisions of the current group of 128 keys
    auto group = [&](int64_t s) {
      if (a.dropout) decisions = group_decisions(blk, a, stream + s);
    };
    for_each_key<DM>(blk, a, d, b, h, active, qs, mask_row, pad_row, ks, vs, group, [&](int r, int64_t s, float x) {
      if (record_bits && s / 1024 != span) {
        if (span >= 0) a.dropout_bits[dropout_word(row, d.S, span * 1024 + lane)] = bits;
        span = s / 1024, bits = 0;
      }
      if (x == -INFINITY) return;  // probability 0 (skipping it keeps exp(-inf - -inf) out of the sums)
      const bool keep = !a.dropout || (decisions >> (r % 128 / 32) & 1u);
      if (record_bits && keep) bits |= dropout_bit(s);
      if (x > m) {  // new max: rescale what this lane has (exp(-inf) = 0 on the lane's first key)
        const float c = expf(m - x);
        sum = fmaf(sum, c, 1.0f);
        MSMIX_UNROLL
        for (int j = 0; j < DM; ++j) acc[j] = keep ? fmaf(acc[j], c, vs[r][j]) : acc[j] * c;
        m = x;
      } else {
        const float e = expf(x - m);
        sum += e;
        if (keep) {
          MSMIX_UNROLL
          for (int j = 0; j < DM; ++j) acc[j] = fmaf(e, vs[r][j], acc[j]);
        }
      }
    });
    if (!active) continue;  // warp-uniform: the shuffles below see all 32 lanes
    if (span >= 0) a.dropout_bits[dropout_word(row, d.S, span * 1024 + lane)] = bits;
    // Merge the lanes' states (xor butterfly). Lane 0's result is written; the others' may differ in the
    // last bit (the two products of a merge are fused in lane order), which nothing reads.
    for (int o = 16; o > 0; o >>= 1) {
      const float m2 = blk.shfl_xor(m, o), sum2 = blk.shfl_xor(sum, o);
      const float mn = fmaxf(m, m2);
      const bool live = mn != -INFINITY;  // both -inf: both sums are 0, nothing to scale
      const float c1 = live ? expf(m - mn) : 0.0f, c2 = live ? expf(m2 - mn) : 0.0f;
      if (live) sum = sum * c1 + sum2 * c2;
      MSMIX_UNROLL
      for (int j = 0; j < DM; ++j) {
        const float other = blk.shfl_xor(acc[j], o);
        if (live) acc[j] = acc[j] * c1 + other * c2;
      }
      m = mn;
    }
    // No open key (m = -inf): the CPU's exp(-inf - -inf) makes the probabilities and the sum NaN, so 1 / sum
    // is NaN, and the output NaN, also when dropout drops every key (as PyTorch's dropout, NaN * 0, and the
    // CPU kernel, whose row tail past S carries the NaN). S = 0: the sum is 0, 1 / sum inf, the output 0.
    const bool closed = m == -INFINITY;
    if (lane == 0) {
      const float inv = closed ? (d.S > 0 ? NAN : INFINITY) : 1.0f / sum;
      stats[(bh * d.L + l) * 2] = m;
      stats[(bh * d.L + l) * 2 + 1] = inv;
      const float f = a.dropout ? a.dropout_scale : 1.0f;  // kept probabilities are scaled by 1 / (1 - p)
      float* o = out + (b * d.L + l) * E + h * d.D;
      MSMIX_UNROLL
      for (int j = 0; j < DM; ++j)
        if (j < d.D) o[j] = closed ? (d.S > 0 ? NAN : 0.0f) : acc[j] * inv * f;
    }
  }
}

// What the backward needs per (l, s), from the score x: P (the forward's probability, recomputed from the saved
// stats: NaN on a row with no open key, as on the CPU), Pd = dropout(P), and dP = dropout(dPd) where
// dPd = dO_l . v_s is the grad of Pd. The kernels skip a masked key (x = -inf) of a row with an open key
// (m finite) before calling it: there P = Pd = 0 and every term it feeds (P dP, P (dP - t), Pd dO) is 0 for
// finite inputs, as the CPU's loops stop at a row's last open key and its masked probabilities are 0.
struct PairGrad {
  float p, pd, dp;
};
// keep: the pair's dropout decision (read only with dropout).
MSMIX_BLOCK_FN PairGrad pair_grad(const AttentionArgs& a, float x, float m, float inv, float dpd, bool keep) {
  PairGrad g;
  g.p = expf(x - m) * inv;
  if (a.dropout) {
    // A multiply, not a select: a dropped NaN P (a row with no open key) stays NaN in Pd, so it reaches dv as
    // on the CPU (NaN * 0, as PyTorch's dropout).
    const float f = keep ? a.dropout_scale : 0.0f;
    g.pd = g.p * f;
    g.dp = dpd * f;
  } else {
    g.pd = g.p, g.dp = dpd;
  }
  return g;
}

// ---- backward rows: tiles as the forward. t_rows [B H, L] gets t = sum_s P dP; gq (or null) gets
// dq = scale sum_s P (dP - t) k_s. Shared: rows_shared_floats<DM>().
template <int DM, class Block>
MSMIX_BLOCK_FN void backward_rows(const Block& blk, const AttentionArgs& a, const AttentionDims& d, const float* stats,
                                  const float* gout, float* t_rows, float* gq) {
  constexpr int R = ChunkRows<DM>::value;
  StagedRow<DM>* ks = reinterpret_cast<StagedRow<DM>*>(blk.shared());
  StagedRow<DM>* vs = ks + R;
  const int warp = blk.thread() / 32, lane = blk.thread() % 32;
  const int64_t E = d.H * d.D, row_tiles = (d.L + kWarps - 1) / kWarps, tiles = d.B * d.H * row_tiles;
  for (int64_t tile = blk.block(); tile < tiles; tile += blk.blocks()) {
    const int64_t bh = tile / row_tiles, b = bh / d.H, h = bh % d.H;
    const int64_t l = (tile % row_tiles) * kWarps + warp;
    const bool active = l < d.L;
    const int64_t at = (b * d.L + l) * E + h * d.D;  // row l, head h of q, dO and dq
    float qs[DM], go[DM];
    MSMIX_UNROLL
    for (int j = 0; j < DM; ++j) {
      qs[j] = active && j < d.D ? a.q[at + j] * a.scale : 0.0f;
      go[j] = active && j < d.D ? gout[at + j] : 0.0f;
    }
    const float m = active ? stats[(bh * d.L + l) * 2] : 0.0f, inv = active ? stats[(bh * d.L + l) * 2 + 1] : 0.0f;
    const float* mask_row = active ? mask_row_of(a, d, bh, l) : nullptr;
    const float* pad_row = a.key_padding ? a.key_padding + b * d.S : nullptr;
    const int64_t row = bh * d.L + l;
    // t = sum_s P dP = dO . O (NaN on a row with no open key, whose output is NaN; 0 when S = 0).
    float t = 0.0f;
    MSMIX_UNROLL
    for (int j = 0; j < DM; ++j)
      if (active && j < d.D) t = fmaf(go[j], a.out[at + j], t);
    if (active && lane == 0) t_rows[bh * d.L + l] = t;
    if (!gq) continue;  // the same for the whole grid
    // dq = scale sum_s dS k_s, dS = P (dP - t), over this lane's keys, then over the warp.
    float dq[DM];
    MSMIX_UNROLL
    for (int j = 0; j < DM; ++j) dq[j] = 0.0f;
    auto no_group = [](int64_t) {};
    for_each_key<DM>(blk, a, d, b, h, active, qs, mask_row, pad_row, ks, vs, no_group, [&](int r, int64_t s, float x) {
      if (x == -INFINITY && m != -INFINITY) return;
      const PairGrad g = pair_grad(a, x, m, inv, dot<DM>(go, vs[r]), a.dropout && kept_at(a, d.S, row, s));
      const float ds = g.p * (g.dp - t);
      MSMIX_UNROLL
      for (int j = 0; j < DM; ++j) dq[j] = fmaf(ds, ks[r][j], dq[j]);
    });
    if (!active) continue;
    MSMIX_UNROLL
    for (int j = 0; j < DM; ++j) dq[j] = warp_sum(blk, dq[j]);
    if (lane == 0) {
      MSMIX_UNROLL
      for (int j = 0; j < DM; ++j)
        if (j < d.D) gq[at + j] = dq[j] * a.scale;
    }
  }
}

// ---- backward keys: grid-stride over tiles (bh, block of kWarps keys); warp w takes key s = s0 + w and its
// lanes the query rows of each staged chunk. gk (or null) gets dk = sum_l dS (q_l scale), gv (or null)
// dv = sum_l Pd dO_l. t_rows is read only for gk. Shared: keys_shared_floats<DM>().
template <int DM, class Block>
MSMIX_BLOCK_FN void backward_keys(const Block& blk, const AttentionArgs& a, const AttentionDims& d, const float* stats,
                                  const float* gout, const float* t_rows, float* gk, float* gv) {
  constexpr int R = QueryChunk<DM>::value;
  StagedRow<DM>* qss = reinterpret_cast<StagedRow<DM>*>(blk.shared());  // rows of q scale and dO of head h
  StagedRow<DM>* gos = qss + R;
  float* ms = reinterpret_cast<float*>(gos + R);  // their stats and t
  float* invs = ms + R;
  float* ts = invs + R;
  const int warp = blk.thread() / 32, lane = blk.thread() % 32;
  const int64_t E = d.H * d.D, key_tiles = (d.S + kWarps - 1) / kWarps, tiles = d.B * d.H * key_tiles;
  for (int64_t tile = blk.block(); tile < tiles; tile += blk.blocks()) {
    const int64_t bh = tile / key_tiles, b = bh / d.H, h = bh % d.H;
    const int64_t s = (tile % key_tiles) * kWarps + warp;
    const bool active = s < d.S;
    const int64_t at = (b * d.S + s) * E + h * d.D;  // key s, head h of k, v, dk and dv
    float kr[DM], vr[DM];
    MSMIX_UNROLL
    for (int j = 0; j < DM; ++j) {
      kr[j] = active && j < d.D ? a.k[at + j] : 0.0f;
      vr[j] = active && j < d.D ? a.v[at + j] : 0.0f;
    }
    const bool padded = active && a.key_padding && a.key_padding[b * d.S + s] != 0.0f;
    // This key's dropout bits (kept_at with the key fixed): one word of each query row, one bit of it.
    const uint32_t* bits = a.dropout_bits ? a.dropout_bits + dropout_word(0, d.S, s) : nullptr;
    const int64_t row_words = dropout_row_words(d.S);
    const uint32_t bit = dropout_bit(s);
    float dk[DM], dv[DM];
    MSMIX_UNROLL
    for (int j = 0; j < DM; ++j) dk[j] = 0.0f, dv[j] = 0.0f;
    for (int64_t l0 = 0; l0 < d.L; l0 += R) {
      const int n = int(d.L - l0 < R ? d.L - l0 : R);
      blk.sync();
      stage_rows<DM, R>(blk, a.q, d, d.L, b, h, l0, n, a.scale, qss);
      stage_rows<DM, R>(blk, gout, d, d.L, b, h, l0, n, 1.0f, gos);
      for (int r = blk.thread(); r < n; r += blk.threads()) {
        ms[r] = stats[(bh * d.L + l0 + r) * 2];
        invs[r] = stats[(bh * d.L + l0 + r) * 2 + 1];
        ts[r] = gk ? t_rows[bh * d.L + l0 + r] : 0.0f;
      }
      blk.sync();
      if (!active) continue;
      for (int r = lane; r < n; r += 32) {
        const int64_t l = l0 + r;
        // The same score as the rows kernel: dot(q scale, k) in column order, + mask, padding -inf.
        float x = dot<DM>(qss[r], kr);
        if (a.attn_mask) x += mask_row_of(a, d, bh, l)[s];
        if (padded) x = -INFINITY;
        if (x == -INFINITY && ms[r] != -INFINITY) continue;
        const int64_t row = bh * d.L + l;
        bool keep = false;
        if (a.dropout) keep = bits ? (bits[row * row_words] & bit) != 0 : kept(a, row * d.S + s);
        const PairGrad g = pair_grad(a, x, ms[r], invs[r], dot<DM>(gos[r], vr), keep);
        const float ds = g.p * (g.dp - ts[r]);
        MSMIX_UNROLL
        for (int j = 0; j < DM; ++j) {
          dv[j] = fmaf(g.pd, gos[r][j], dv[j]);
          dk[j] = fmaf(ds, qss[r][j], dk[j]);
        }
      }
    }
    if (!active) continue;
    MSMIX_UNROLL
    for (int j = 0; j < DM; ++j) dk[j] = warp_sum(blk, dk[j]), dv[j] = warp_sum(blk, dv[j]);
    if (lane == 0) {
      MSMIX_UNROLL
      for (int j = 0; j < DM; ++j) {
        if (j >= d.D) continue;
        if (gk) gk[at + j] = dk[j];
        if (gv) gv[at + j] = dv[j];
      }
    }
  }
}

}  // namespace msmix::attention_block
