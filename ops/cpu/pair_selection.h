// SASS's pair selection (shared/spec/msmix.md section 1) on a similarity matrix, the CPU twin of
// ops/cuda/pair_selection.cu: a plain, sequential reading of the spec that the GPU kernel must match exactly.
// The random draws come in as numbers drawn beforehand (select_pairs' `draws`), so the selection itself draws
// nothing: a GPU can run it without the host, and a captured CUDA graph can replay it with new draws.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

namespace msmix::cpu {

// S' in place (s row-major [B, B]): the diagonal zeroed, the off-diagonal entries min-max normalised into
// [0, 1] with the min and max over the off-diagonal entries alone (NaN entries ignored there); all 0.5 when
// they span less than 1e-8 (as the released code), the diagonal zeroed again.
void normalize_similarity(std::vector<float>& s, int64_t B);

// Ordered pairs (i, j) as flat positions i * B + j.
// The candidates, before shuffling: every (i, j), i != j, with S'_ij > delta, in row-major order; when fewer
// than B exist, the min(2B, B(B-1)/2) largest entries of the strict upper triangle instead, largest first,
// ties by position, NaN below every number. B = 1: none. above_delta: how many were above delta.
std::vector<int64_t> selection_candidates(const std::vector<float>& normalized, int64_t B, float delta,
                                          int64_t* above_delta);

// The selection's random draws: its k-th randint call takes draw k, r = 64 bits, held as four floats of 16
// bits each, most significant first (exact in float32). randint(n) = r % n.
constexpr int kDrawParts = 4;
uint64_t draw_value(const float* draws, int64_t k);

// B pairs from the candidates `pool` (n of them, n >= 1): a partial Fisher-Yates (for k = 0 .. min(n, B) - 1,
// swap pool[k] with pool[k + randint(n - k)]) keeping the first min(n, B), then draws with replacement
// (pool[randint(n)]) up to B; randint call k takes draw k. Returns flat positions.
std::vector<int64_t> shuffle_candidates(std::vector<int64_t> pool, int64_t B, const float* draws);

// The whole selection from the raw similarity s [B, B] (not yet normalised). draws [B, kDrawParts] (the B
// randint calls; unread when B = 1, whose only pair is (0, 0)). pairs [2, B]: the i of each pair, then the j,
// as floats. stats [4]: the pairs above delta, 1 when the fallback pool was used (else 0), the pool size, and
// the mean S' of the B chosen pairs (0 at B = 1).
constexpr int kSelectionStats = 4;
void select_pairs(const float* similarity, int64_t B, float delta, const float* draws, float* pairs, float* stats);

}  // namespace msmix::cpu
