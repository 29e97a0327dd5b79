// MS-Mix's pair selection (SASS, shared/spec/msmix.md section 1) as one op on either device: from a batch's
// averaged cosine similarity and random numbers drawn beforehand, B ordered pairs (i, j) of similar samples.
// It draws nothing and reads nothing back, so on a GPU the step goes on without waiting for the host, and a
// captured CUDA graph replays it with each step's new draws. Not differentiated.
//
//   Tensor draws = selection_draws(B, gen, device);          // [B, 4]: the selection's B randint calls
//   SelectedPairs p = select_pairs(similarity, delta, draws);
//   Tensor zi = index_select(z, 0, p.index_i);              // no check, no read: bounded indices
#pragma once
#include <vector>

#include "engine/random.h"
#include "engine/tensor.h"

namespace msmix {

// The largest batch select_pairs takes: its B * B positions are held exactly as float32 (up to 2^24).
constexpr int64_t kMaxSelectionBatch = 4096;

struct SelectedPairs {
  Tensor index_i, index_j;  // [B]: pair k is (index_i[k], index_j[k]); bounded_index()es (bound B)
  Tensor stats;             // [4]: pairs above delta, 1 if the fallback pool was used, pool size, mean S' of the pairs
};

// The selection's random numbers: B values of Generator::next_u64 (what its B randint calls would reduce),
// as [B, 4] floats of 16 bits each (ops/cpu/pair_selection.h); none for B = 1 ([1, 4] zeros, unread).
Tensor selection_draws(int64_t B, Generator& gen, Device device);
std::vector<float> selection_draw_values(int64_t B, Generator& gen);  // the same values, on the host

// similarity [B, B] (1 <= B <= kMaxSelectionBatch) and draws [B, 4] on one device. The CPU twin: cpu::select_pairs.
SelectedPairs select_pairs(const Tensor& similarity, float delta, const Tensor& draws);

}  // namespace msmix
