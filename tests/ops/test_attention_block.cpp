// The fused attention's CUDA kernel bodies (ops/cuda/attention_block.h) run on the CPU through
// tests/ops/emulated_block.h (one std::thread per CUDA thread, barriers for __syncthreads and the warp shuffles,
// NaN-filled shared memory) and must give the CPU twin's (ops/cpu/attention.h) outputs, row stats and grads:
// every head width class, lengths that cross the 8-row tiles and the 64-, 128- and 256-row chunks, both mask shapes,
// MulT's future mask, padding, rows with no open key, dropout, grids smaller than the tile count, and only some
// grads wanted. This checks the kernels' indexing, staging, lane merges and dropout elements in CI;
// tests/cuda/test_cuda_attention.cpp runs the same kernels on a GPU.
#include <algorithm>
#include <string>

#include "ops/cpu/attention.h"
#include "ops/cuda/attention_block.h"
#include "tests/ops/emulated_block.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;
namespace ab = msmix::attention_block;

namespace {

// shared: [L, S]; per_head: [B H, L, S]; closed_row: per_head with row 1 all -inf (the other rows open)
enum class MaskKind { none, shared, per_head, future, closed_row };
enum class PadKind { none, suffix, closed };             // closed: batch 0's keys are all padding

struct Case {
  int64_t B, H, D, L, S;
  MaskKind mask = MaskKind::none;
  PadKind pad = PadKind::none;
  float p = 0;   // dropout
  int grid = 3;  // emulated blocks (fewer than the tiles: the grid-stride loops run)
  bool gq = true, gk = true, gv = true;
  bool bits = true;  // with dropout: the forward writes its decisions, the backward reads them (else: Philox)
};

std::string name_of(const Case& c) {
  return "B " + std::to_string(c.B) + " H " + std::to_string(c.H) + " D " + std::to_string(c.D) + " L " +
         std::to_string(c.L) + " S " + std::to_string(c.S) + " mask " + std::to_string(int(c.mask)) + " pad " +
         std::to_string(int(c.pad)) + " p " + std::to_string(c.p) + " grid " + std::to_string(c.grid) + " bits " +
         std::to_string(c.bits);
}

std::vector<float> random_values(int64_t n, uint64_t seed, float scale = 1) {
  return n == 0 ? std::vector<float>() : leaf({n}, seed, scale).to_vector();
}

int blocks_for(int grid, int64_t tiles) { return int(std::max<int64_t>(1, std::min<int64_t>(grid, tiles))); }

void check_case(const Case& c, uint64_t seed) {
  CAPTURE(name_of(c));
  const int64_t E = c.H * c.D, BH = c.B * c.H;
  const std::vector<float> q = random_values(c.B * c.L * E, seed), k = random_values(c.B * c.S * E, seed + 1),
                           v = random_values(c.B * c.S * E, seed + 2), gout = random_values(c.B * c.L * E, seed + 3);
  std::vector<float> mask;
  if (c.mask == MaskKind::shared || c.mask == MaskKind::per_head) {
    mask = random_values((c.mask == MaskKind::per_head ? BH : 1) * c.L * c.S, seed + 4);
    for (size_t i = 0; i < mask.size(); i += 5) mask[i] = -INFINITY;  // some closed pairs
  } else if (c.mask == MaskKind::closed_row) {
    mask = random_values(BH * c.L * c.S, seed + 4);
    for (int64_t bh = 0; bh < BH; ++bh)
      for (int64_t s = 0; s < c.S; ++s) mask[size_t((bh * c.L + 1) * c.S + s)] = -INFINITY;
  } else if (c.mask == MaskKind::future) {
    // MMSA's MulT: -inf where s >= l + 1 + |S - L|
    mask.assign(size_t(c.L * c.S), 0.0f);
    for (int64_t l = 0; l < c.L; ++l)
      for (int64_t s = l + 1 + std::abs(c.S - c.L); s < c.S; ++s) mask[size_t(l * c.S + s)] = -INFINITY;
  }
  std::vector<float> pad;
  if (c.pad != PadKind::none) {
    pad.assign(size_t(c.B * c.S), 0.0f);
    for (int64_t b = 0; b < c.B; ++b) {
      const int64_t open = c.pad == PadKind::closed && b == 0 ? 0 : std::max<int64_t>(1, c.S - b - 1);
      for (int64_t s = open; s < c.S; ++s) pad[size_t(b * c.S + s)] = 1.0f;
    }
  }
  cpu::AttentionArgs a;
  a.q = q.data(), a.k = k.data(), a.v = v.data();
  a.attn_mask = mask.empty() ? nullptr : mask.data();
  a.mask_per_head = c.mask == MaskKind::per_head || c.mask == MaskKind::closed_row;
  a.key_padding = pad.empty() ? nullptr : pad.data();
  a.scale = 1.0f / std::sqrt(float(c.D));
  if (c.p > 0) a.dropout = true, a.dropout_p = c.p, a.dropout_scale = 1.0f / (1.0f - c.p);
  a.seed = 1234 + seed, a.offset = 17;
  const cpu::AttentionDims d{c.B, c.H, c.L, c.S, c.D};

  // The CPU twin.
  std::vector<float> out(size_t(c.B * c.L * E)), stats(size_t(BH * c.L * 2)), gq(size_t(c.B * c.L * E)),
      gk(size_t(c.B * c.S * E)), gv(size_t(c.B * c.S * E));
  cpu::attention_forward(a, d, out.data(), stats.data());
  cpu::attention_backward(a, d, stats.data(), gout.data(), c.gq ? gq.data() : nullptr, c.gk ? gk.data() : nullptr,
                          c.gv ? gv.data() : nullptr);

  // The kernels' code, with NaN where nothing has been written yet.
  std::vector<float> out2(out.size(), NAN), stats2(stats.size(), NAN), t_rows(size_t(BH * c.L), NAN),
      gq2(gq.size(), NAN), gk2(gk.size(), NAN), gv2(gv.size(), NAN);
  float* gq2p = c.gq ? gq2.data() : nullptr;
  float* gk2p = c.gk ? gk2.data() : nullptr;
  float* gv2p = c.gv ? gv2.data() : nullptr;
  a.out = out2.data();  // the GPU backward reads the forward's output (its own, as on the GPU)
  // The dropout bits, filled with a pattern the forward must overwrite wherever the backward reads.
  std::vector<uint32_t> bits;
  if (a.dropout && c.bits) {
    bits.assign(size_t(BH * c.L * ab::dropout_row_words(c.S)), 0xA5A5A5A5u);
    a.dropout_bits = bits.data();
  }
  const int64_t row_tiles = BH * ((c.L + ab::kWarps - 1) / ab::kWarps),
                key_tiles = BH * ((c.S + ab::kWarps - 1) / ab::kWarps);
  ab::with_register_width(c.D, [&](auto width) {
    constexpr int DM = decltype(width)::value;
    const size_t rows_shared = size_t(ab::rows_shared_floats<DM>()), keys_shared = size_t(ab::keys_shared_floats<DM>());
    if (row_tiles > 0) {
      emulate_grid(blocks_for(c.grid, row_tiles), ab::kBlockThreads, rows_shared,
                   [&](const EmulatedBlock& blk) { ab::forward<DM>(blk, a, d, out2.data(), stats2.data()); });
      if (c.gq || c.gk)
        emulate_grid(blocks_for(c.grid, row_tiles), ab::kBlockThreads, rows_shared, [&](const EmulatedBlock& blk) {
          ab::backward_rows<DM>(blk, a, d, stats2.data(), gout.data(), t_rows.data(), gq2p);
        });
    }
    if ((c.gk || c.gv) && key_tiles > 0)
      emulate_grid(blocks_for(c.grid, key_tiles), ab::kBlockThreads, keys_shared, [&](const EmulatedBlock& blk) {
        ab::backward_keys<DM>(blk, a, d, stats2.data(), gout.data(), t_rows.data(), gk2p, gv2p);
      });
  });
  // Sums run in another order (per lane, then a butterfly; the CPU: in key order, vectorised), and expf is not
  // the CPU's exp: a few ulps per term.
  const double rtol = 2e-5 * std::sqrt(double(std::max<int64_t>(c.S, c.L))), atol = 1e-5;
  check_close(out2, out, rtol, atol, "output");
  check_close(stats2, stats, rtol, atol, "row stats (max, 1 / sum)");
  if (c.gq) check_close(gq2, gq, rtol, atol, "grad of q");
  if (c.gk) check_close(gk2, gk, rtol, atol, "grad of k");
  if (c.gv) check_close(gv2, gv, rtol, atol, "grad of v");
  // Without masks every pair is drawn: each bit must be Philox's decision for its element.
  if (!bits.empty() && c.mask == MaskKind::none && c.pad == PadKind::none) {
    int64_t wrong = 0;
    for (int64_t row = 0; row < BH * c.L; ++row)
      for (int64_t s = 0; s < c.S; ++s) wrong += ab::kept_at(a, c.S, row, s) != ab::kept(a, row * c.S + s);
    CHECK(wrong == 0);
  }
}

}  // namespace

TEST_CASE("attention block: the CUDA kernels' code, emulated on the CPU, gives the CPU twin's outputs and grads") {
  // Each register width class (5 and 10 exactly, else 8, 16, 32, 64, with padded columns for 1, 3, 12, 50),
  // lengths across the 8-row tiles and the 64-, 128- and 256-row chunks (256 for widths up to 16), every mask
  // and padding kind, with and without dropout.
  const std::vector<Case> cases = {
      {2, 2, 5, 9, 7, MaskKind::none, PadKind::none, 0.0f},
      {1, 3, 10, 7, 33, MaskKind::shared, PadKind::suffix, 0.3f},
      {2, 1, 1, 33, 9, MaskKind::per_head, PadKind::none, 0.0f},
      {1, 2, 3, 9, 129, MaskKind::future, PadKind::suffix, 0.3f},
      {2, 1, 12, 65, 50, MaskKind::none, PadKind::closed, 0.0f},
      {1, 2, 16, 50, 65, MaskKind::per_head, PadKind::suffix, 0.3f},
      {1, 1, 32, 16, 129, MaskKind::shared, PadKind::none, 0.2f},
      {1, 1, 50, 17, 66, MaskKind::future, PadKind::closed, 0.0f},
      {1, 2, 64, 9, 65, MaskKind::none, PadKind::suffix, 0.3f},
      {1, 2, 5, 10, 70, MaskKind::none, PadKind::none, 0.3f},
      {1, 1, 5, 260, 270, MaskKind::future, PadKind::suffix, 0.3f},
      {1, 1, 10, 257, 20, MaskKind::shared, PadKind::none, 0.0f},
  };
  uint64_t seed = 9100;
  for (const Case& c : cases) check_case(c, seed += 10);
}

TEST_CASE("attention block: rows with no open key are NaN, as on the CPU; empty key sets and grid of one") {
  check_case({2, 2, 5, 9, 7, MaskKind::none, PadKind::closed, 0.3f}, 9300);      // batch 0: every key padded
  check_case({2, 1, 16, 10, 3, MaskKind::future, PadKind::closed, 0.0f}, 9310);  // batch 0 closed, the rest
  // One closed row among open ones, with dropout: its NaN P reaches dk and dv of every key, dropped or kept
  // (the CPU's NaN * 0, as PyTorch's dropout), while the other rows stay finite.
  check_case({2, 2, 5, 4, 9, MaskKind::closed_row, PadKind::none, 0.3f}, 9340);
  check_case({1, 2, 16, 9, 33, MaskKind::closed_row, PadKind::suffix, 0.5f}, 9350);
  check_case({1, 1, 8, 5, 0, MaskKind::none, PadKind::none, 0.0f, 1}, 9320);     // S = 0: output 0, no grads
  check_case({1, 1, 8, 0, 6, MaskKind::none, PadKind::none, 0.0f, 1}, 9330);     // L = 0: grads of k, v are 0
}

TEST_CASE("attention block: dropout bits over several 1024-key spans, and the backward without them") {
  check_case({1, 1, 5, 3, 2100, MaskKind::none, PadKind::none, 0.3f, 2}, 9500);  // spans 0, 1 and a part of 2
  check_case({1, 2, 8, 4, 1030, MaskKind::future, PadKind::suffix, 0.4f, 2}, 9510);
  Case philox{1, 2, 5, 17, 40, MaskKind::shared, PadKind::suffix, 0.3f};  // the backward draws Philox again
  philox.bits = false;
  check_case(philox, 9520);
}

TEST_CASE("attention block: only some grads wanted") {
  Case c{2, 2, 5, 17, 20, MaskKind::future, PadKind::suffix, 0.3f};
  c.gk = c.gv = false;
  check_case(c, 9400);
  c.gk = true, c.gq = false;
  check_case(c, 9410);
  c.gk = false, c.gv = true;
  check_case(c, 9420);
}

TEST_CASE("emulated block: a thread that skips a sync or a lane that skips a shuffle is an error, not a hang") {
  check_throws_with(
      [] {
        emulate_grid(2, 64, 0, [](const EmulatedBlock& blk) {
          if (blk.thread() == 5) return;  // leaves before the others' __syncthreads
          blk.sync();
        });
      },
      {"emulated kernel", "__syncthreads of block 0"});
  check_throws_with(
      [] {
        emulate_grid(1, 64, 0, [](const EmulatedBlock& blk) {
          if (blk.thread() % 32 == 3) return;  // a lane out of its warp's shuffle
          blk.shfl_xor(1.0f, 1);
        });
      },
      {"emulated kernel", "shuffle of warp"});
  // And the rules kept: a butterfly sum gives every lane the warp's total.
  std::vector<float> sums(64);
  emulate_grid(1, 64, 0,
               [&](const EmulatedBlock& blk) { sums[size_t(blk.thread())] = ab::warp_sum(blk, float(blk.thread())); });
  for (int t = 0; t < 64; ++t) CHECK(sums[size_t(t)] == (t < 32 ? 496.0f : 1520.0f));
}
