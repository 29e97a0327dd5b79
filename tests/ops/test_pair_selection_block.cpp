// The pair selection's CUDA kernel body (ops/cuda/pair_selection_block.h) runs on the CPU through
// tests/ops/emulated_block.h (a fiber per CUDA thread, a barrier for __syncthreads, NaN-filled shared memory and,
// here, a NaN-filled workspace of exactly workspace_floats(B)). Its pairs and stats must equal the CPU twin's
// (ops/cpu/pair_selection.h) bit for bit: over batch sizes 1 to 100, deltas that take all, some or none of the
// pairs (the fallback pool), quantised similarities (ties across the fallback's K-th entry), NaN entries, a flat
// matrix, asymmetric input, infinities, signed zeros and extreme draws, at block sizes 32, 256 and the launch's.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "ops/cpu/pair_selection.h"
#include "ops/cuda/pair_selection_block.h"
#include "tests/ops/emulated_block.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;
namespace ps = msmix::pair_selection_block;

namespace {

// A float in [0, 1) from 24 random bits (std::mt19937's output is fixed by the standard; its distributions
// are not).
float uniform(std::mt19937& rng) { return float(rng() >> 8) * 0x1p-24f; }

// A similarity [B, B] of cosine-like values in [-1, 1) with a unit diagonal; `levels` > 0 rounds them to that
// many values (many ties); asymmetric: each (i, j) drawn on its own.
std::vector<float> similarity(int64_t B, uint32_t seed, int levels = 0, bool symmetric = true) {
  std::mt19937 rng(seed);
  std::vector<float> s(size_t(B * B), 1.0f);
  for (int64_t i = 0; i < B; ++i)
    for (int64_t j = symmetric ? i + 1 : 0; j < B; ++j) {
      if (i == j) continue;
      float x = 2 * uniform(rng) - 1;
      if (levels > 0) x = std::floor(x * float(levels)) / float(levels);
      s[size_t(i * B + j)] = x;
      if (symmetric) s[size_t(j * B + i)] = x;
    }
  return s;
}

// [B, 4] random 16-bit parts, as selection_draw_values.
std::vector<float> draws_for(int64_t B, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> d(size_t(B * cpu::kDrawParts));
  for (float& x : d) x = float(rng() & 0xffffu);
  return d;
}

bool same(float a, float b) { return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof a) == 0; }

// Runs the twin and the emulated kernel body on the same input and checks every output; returns the twin's
// stats. draws may be null at B = 1 (read by neither).
std::vector<float> check_against_twin(const std::vector<float>& s, int64_t B, float delta, const float* draws,
                                      int threads) {
  CAPTURE(B);
  CAPTURE(delta);
  CAPTURE(threads);
  std::vector<float> pairs(size_t(2 * B), NAN), stats(cpu::kSelectionStats, NAN);
  cpu::select_pairs(s.data(), B, delta, draws, pairs.data(), stats.data());
  std::vector<float> kpairs(size_t(2 * B), NAN), kstats(cpu::kSelectionStats, NAN);
  std::vector<float> workspace(size_t(ps::workspace_floats(B)), NAN);  // exact size: ASan sees an overrun
  emulate_grid(1, threads, size_t(ps::shared_floats(threads)), [&](const EmulatedBlock& blk) {
    ps::select_pairs(blk, s.data(), B, delta, draws, kpairs.data(), kstats.data(), workspace.data());
  });
  for (int64_t k = 0; k < 2 * B; ++k) {
    CAPTURE(k);
    CHECK(same(kpairs[size_t(k)], pairs[size_t(k)]));
  }
  for (int k = 0; k < cpu::kSelectionStats; ++k) {
    CAPTURE(k);
    CHECK(same(kstats[size_t(k)], stats[size_t(k)]));
  }
  return stats;
}

std::vector<float> check_both_blocks(const std::vector<float>& s, int64_t B, float delta, const float* draws) {
  std::vector<float> stats;
  for (const int threads : {32, 256}) stats = check_against_twin(s, B, delta, draws, threads);
  return stats;
}

const int64_t kSizes[] = {1, 2, 3, 5, 16, 33, 64, 100};

}  // namespace

TEST_CASE("pair selection block: random similarities at every delta equal the CPU twin") {
  uint32_t seed = 8100;
  for (const int64_t B : kSizes) {
    const std::vector<float> s = similarity(B, seed++), d = draws_for(B, seed++);
    // 0.4: the usual; 0.95, 1.0: few or none above (the fallback); 0, -1: (nearly) every off-diagonal pair.
    for (const float delta : {0.4f, 0.95f, 1.0f, 0.0f, -1.0f}) {
      const std::vector<float> stats = check_both_blocks(s, B, delta, B == 1 ? nullptr : d.data());
      if (delta == 1.0f) CHECK(stats[1] == 1.0f);  // S' <= 1: the fallback
    }
  }
}

TEST_CASE("pair selection block: quantised similarities, ties across the fallback's K-th entry") {
  uint32_t seed = 8200;
  for (const int64_t B : {3, 5, 16, 33, 64}) {
    for (const int levels : {2, 5}) {
      CAPTURE(levels);
      const std::vector<float> s = similarity(B, seed++, levels), d = draws_for(B, seed++);
      for (const float delta : {0.4f, 0.5f, 0.75f, 0.99f}) check_both_blocks(s, B, delta, d.data());
    }
  }
}

TEST_CASE("pair selection block: NaN entries, a NaN row, an all-NaN off-diagonal") {
  uint32_t seed = 8300;
  for (const int64_t B : {2, 3, 5, 16, 33}) {
    const std::vector<float> d = draws_for(B, seed++);
    std::vector<float> s = similarity(B, seed++, 4);  // ties too
    // A few NaN pairs: below every number in the fallback's order, never above delta.
    std::mt19937 rng(seed++);
    for (int n = 0; n < int(B); ++n) {
      const int64_t i = int64_t(rng() % uint32_t(B)), j = int64_t(rng() % uint32_t(B));
      if (i != j) s[size_t(i * B + j)] = s[size_t(j * B + i)] = NAN;
    }
    for (const float delta : {0.4f, 1.0f}) check_both_blocks(s, B, delta, d.data());
    // Row and column 0 NaN; then more NaN than the fallback's K numbers (NaN entries join its pool).
    for (int64_t j = 1; j < B; ++j) s[size_t(j)] = s[size_t(j * B)] = NAN;
    for (const float delta : {0.4f, 1.0f}) check_both_blocks(s, B, delta, d.data());
    for (int64_t p = 0; p < B * B; ++p)
      if (p % 3 && p / B != p % B) s[size_t(p)] = NAN;
    for (const float delta : {0.0f, 1.0f}) check_both_blocks(s, B, delta, d.data());
    // Every off-diagonal entry NaN: no range, so flat (0.5 everywhere).
    for (int64_t p = 0; p < B * B; ++p)
      if (p / B != p % B) s[size_t(p)] = NAN;
    for (const float delta : {0.4f, 0.5f}) check_both_blocks(s, B, delta, d.data());
  }
}

TEST_CASE("pair selection block: flat similarity, B = 1, B = 2's one-entry fallback") {
  uint32_t seed = 8400;
  for (const int64_t B : {1, 2, 3, 16, 33}) {
    const std::vector<float> d = draws_for(B, seed++);
    const float* draws = B == 1 ? nullptr : d.data();
    std::vector<float> s(size_t(B * B), 1e-6f);
    for (int64_t i = 0; i < B; ++i) s[size_t(i * B + i)] = 1.0f;
    // S' 0.5 off the diagonal: all above 0.4; none above 0.5, so the fallback's K-th entry is a tie of all.
    for (const float delta : {0.4f, 0.5f}) check_both_blocks(s, B, delta, draws);
    if (B == 1) continue;
    s[1] += 5e-9f;  // a range under 1e-8: still flat
    for (const float delta : {0.4f, 0.5f}) CHECK(check_both_blocks(s, B, delta, draws)[3] == 0.5f);
    s[1] += 1e-8f;  // over: S' 1 at (0, 1), 0 elsewhere
    for (const float delta : {0.0f, 0.5f}) CHECK(check_both_blocks(s, B, delta, draws)[3] != 0.5f);
  }
  // B = 1: one pair (0, 0), nothing drawn (null draws), stats {0, 1, 0, 0}.
  const std::vector<float> one = {1.0f};
  const std::vector<float> stats = check_against_twin(one, 1, 0.4f, nullptr, 32);
  CHECK(stats == std::vector<float>{0, 1, 0, 0});
  // B = 2 above delta: the pool is (0, 1) and (1, 0); else the fallback's single upper entry, drawn with
  // replacement for the second pair.
  const std::vector<float> two = {1.0f, 0.2f, 0.2f, 1.0f};
  for (uint32_t seed2 = 8450; seed2 < 8460; ++seed2) {
    const std::vector<float> d = draws_for(2, seed2);
    check_both_blocks(two, 2, -1.0f, d.data());
    CHECK(check_against_twin(two, 2, 1.0f, d.data(), 32) == std::vector<float>{0, 1, 1, 0.5f});
  }
}

TEST_CASE("pair selection block: asymmetric input, infinities, signed zeros, extreme draws") {
  uint32_t seed = 8500;
  for (const int64_t B : {3, 5, 16, 33}) {
    const std::vector<float> d = draws_for(B, seed++);
    const std::vector<float> asym = similarity(B, seed++, 0, false);
    for (const float delta : {0.4f, 0.9f, 1.0f}) check_both_blocks(asym, B, delta, d.data());
    // An infinite entry: the range is infinite, S' 0 or NaN.
    std::vector<float> s = similarity(B, seed++);
    s[1] = s[size_t(B)] = INFINITY;
    for (const float delta : {-1.0f, 0.0f, 1.0f}) check_both_blocks(s, B, delta, d.data());
    s[size_t(2 * B + 1)] = s[size_t(B + 2)] = -INFINITY;
    for (const float delta : {-1.0f, 1.0f}) check_both_blocks(s, B, delta, d.data());
    // Non-negative entries with -0 and +0 as the minimum (S' of -0 or +0: equal in every comparison).
    s = similarity(B, seed++, 3);
    for (float& x : s) x = x < 0 ? (int(x * 3) % 2 ? -0.0f : 0.0f) : x;
    for (const float delta : {0.0f, 0.4f, 1.0f}) check_both_blocks(s, B, delta, d.data());
    // All parts 65535 (r = 2^64 - 1), then alternating 0 and 65535.
    std::vector<float> extreme(d.size(), 65535.0f);
    for (const float delta : {0.4f, 1.0f}) check_both_blocks(s, B, delta, extreme.data());
    for (size_t k = 0; k < extreme.size(); ++k) extreme[k] = k % 2 ? 0.0f : 65535.0f;
    for (const float delta : {0.4f, 1.0f}) check_both_blocks(s, B, delta, extreme.data());
  }
}

TEST_CASE("pair selection block: the launch's block size") {
  uint32_t seed = 8600;
  for (const int64_t B : {2, 33, 100}) {
    const std::vector<float> s = similarity(B, seed++, 5), d = draws_for(B, seed++);
    for (const float delta : {0.4f, 1.0f}) check_against_twin(s, B, delta, d.data(), ps::kThreads);
  }
  CHECK(check_against_twin({1.0f}, 1, 0.4f, nullptr, ps::kThreads) == std::vector<float>{0, 1, 0, 0});
}
