// Sentiment-Aware Sample Selection (SASS, shared/spec/msmix.md section 1): which samples MS-Mix mixes.
// From the three representations of a batch it builds a cosine-similarity matrix averaged over the
// modalities, min-max normalises it, and draws B ordered pairs (i, j) of similar samples. Selection is
// not differentiated: everything here runs on detached values.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "engine/random.h"
#include "engine/tensor.h"
#include "models/backbone.h"
#include "ops/pair_selection.h"

namespace msmix {

using MixPair = std::pair<int64_t, int64_t>;  // (i, j): sample i is mixed with sample j

// What one selection did, for the training log's diagnostics. Filling it draws nothing and changes no pair.
struct SelectionStats {
  int64_t needed = 0;          // B: the pairs a batch needs (0: never filled)
  int64_t above_delta = 0;     // ordered (i, j), i != j, with S'_ij > delta
  bool fallback = false;       // above_delta < B: the pool was the top 2B of the upper triangle instead
  int64_t pool = 0;            // the candidates the pairs were drawn from (above_delta unless fallback)
  double pair_similarity = 0;  // mean S'_ij over the B selected pairs (select only)
};

// The stats of select_pairs' [4] values (read back) for a batch of B.
SelectionStats selection_stats(const std::vector<float>& stats, int64_t B);
// The pairs (index_i[k], index_j[k]) read back to the host (tests, diagnostics).
std::vector<MixPair> host_pairs(const Tensor& index_i, const Tensor& index_j);

class SampleSelector {
 public:
  explicit SampleSelector(float delta = 0.4f);

  // S = (1/3) sum_m Z^m (Z^m)^T with Z^m the rows of z^m flattened to [B, D_m] and scaled to unit length
  // (a zero row stays zero). [B, B], no grad, on the representations' device.
  static Tensor cosine_similarity(const Representations& reps);
  // S' (host tensor [B, B]): diagonal zeroed, min-max over the off-diagonal entries into [0, 1] (all 0.5
  // when they span less than 1e-8, as the released code), diagonal zeroed again.
  static Tensor normalize_similarity(const Tensor& similarity);
  // Candidates from S', before shuffling: every ordered (i, j), i != j, with S'_ij > delta in row-major
  // order; when fewer than B exist, the min(2B, B(B-1)/2) largest entries of the strict upper triangle
  // instead (largest first, ties by row-major position). B = 1: none. `stats`, when given, is filled
  // (all but pair_similarity).
  std::vector<MixPair> candidates(const Tensor& normalized, SelectionStats* stats = nullptr) const;
  // B pairs from S': the candidates shuffled with `gen` (a partial Fisher-Yates: for k = 0, 1, ...,
  // swap k with k + randint(n - k)) and the first B kept; when fewer than B candidates exist, all of them
  // in shuffled order followed by draws with replacement (randint(n)) up to B. B = 1: the single pair
  // (0, 0), an identity mix (no i != j pair exists). `stats`, when given, is filled.
  std::vector<MixPair> select(const Tensor& normalized, Generator& gen, SelectionStats* stats = nullptr) const;
  // The whole of SASS on the representations' device, with the draws made beforehand (selection_draws(B, gen,
  // device), ops/pair_selection.h): the pairs as bounded indices and the stats as a [4] tensor, nothing read
  // back. What a training step uses.
  SelectedPairs select_on_device(const Representations& reps, const Tensor& draws) const;
  // The same pairs (and generator) on the host: select_on_device with draws from `gen`, read back.
  std::vector<MixPair> select(const Representations& reps, Generator& gen, SelectionStats* stats = nullptr) const;

  float delta;  // --mix-delta: the similarity threshold on S'
};

}  // namespace msmix
