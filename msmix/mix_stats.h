// What mixing did during an epoch, for log.jsonl's "mix" object: which pairs were mixed (label distance,
// opposite signs, MS-Mix's selection and its fallback), how far apart the ratios were, and the intensities;
// for MultiMix, which mixes with weights over the batch instead of pairs, how spread its weights were.
//
//   MixStats stats;                        // one per epoch
//   stats.add(mixer.mix(reps, labels, gen));   // per training step: keeps its values on the device, draws nothing
//   line["mix"] = stats.summary();         // one device-to-host copy for the epoch, then the averages
//
// Reading the values changes no training number: the copy reads detached tensors after they were made. A read
// per step would wait for the GPU at every step, hence the values wait on the device until summary().
#pragma once
#include <cstdint>

#include "msmix/mixing.h"
#include "msmix/run_dir.h"

namespace msmix {

// One step's statistics (the per-pair ones as sums over its N pairs; the epoch averages divide).
struct MixStepStats {
  int64_t pairs = 0;                  // N (MultiMix: its N mixed samples)
  bool weighted = false;              // MultiMix: the pair sums below stay 0; the weight sums are set
  double same_sample = 0;             // pairs with i == j (Mixup's fixed points, MS-Mix at B = 1)
  double opposite_sign = 0;           // pairs with y_i * y_j < 0
  double label_distance = 0;          // sum |y_i - y_j|
  double base = 0, base_sq = 0;       // sum lambda_base, sum lambda_base^2
  double label = 0, label_sq = 0;     // sum lambda^L, sum (lambda^L)^2
  double diff_ta = 0, diff_tv = 0, diff_av = 0;  // sum |lambda^t - lambda^a| etc.
  double abs_label = 0, abs_mixed_label = 0;     // sum |y_k| over the originals, sum |ytilde_k| over the pairs
  int64_t samples = 0;                           // B originals (for abs_label and the intensities)
  bool has_intensity = false;                    // MS-Mix
  double intensity[3] = {0, 0, 0}, intensity_sq[3] = {0, 0, 0};  // sums of I^m and (I^m)^2, m = t, a, v
  SelectionStats selection;                      // MS-Mix (needed 0 otherwise)
  double weight_max = 0;                         // MultiMix: sum over mixed samples of the largest weight in the row
  double sources_effective = 0;  // MultiMix: sum of 1 / sum_i w_ki^2 (how many samples a row mixes, effectively)
};

// A mixing step's values, still on the mixing device: 10 rows of N per-pair values (the last two the pairs'
// i and j), the B labels, then for MS-Mix 3 x B intensities and SASS's 4 statistics (values); for MultiMix
// (weighted) 3 rows of N (each row's largest weight, its sum of squares, the mixed label) and the B labels.
// What the host already knows is kept beside them.
struct PendingMixStep {
  Tensor values;
  int64_t pairs = 0;    // N
  int64_t samples = 0;  // B
  bool has_intensity = false, has_selection = false, weighted = false;
};

// What a step leaves for later (inactive: pairs empty, nothing on the device).
PendingMixStep pending_mix_step(const MixResult& r);
// The statistics of one step from its values read back (values: pending.values on the host).
MixStepStats mix_step_stats(const PendingMixStep& pending, const std::vector<float>& values);
// Both at once (one read back); nothing (pairs 0) when r is inactive.
MixStepStats mix_step_stats(const MixResult& r);

class MixStats {
 public:
  void add(const MixResult& r);  // keeps the step's values on the device
  void add(PendingMixStep p);     // the same, from pending_mix_step(r) (nothing when inactive)
  void add(const MixStepStats& s);
  int64_t steps() const { return steps_ + int64_t(pending_.size()); }  // steps that mixed
  // The epoch's averages (keys in docs/training.md, "log.jsonl"); an empty object when no step mixed.
  // Per-pair values are averaged over all pairs of the epoch, per-step ones (candidates, fallback) over steps.
  // Reads the steps added since the last call back first, in one copy.
  Json summary();

 private:
  void read_pending();

  std::vector<PendingMixStep> pending_;
  MixStepStats sum_;
  int64_t steps_ = 0, selection_steps_ = 0, fallbacks_ = 0;
  double above_delta_ = 0, candidate_fraction_ = 0, pool_ = 0, pair_similarity_ = 0;
};

}  // namespace msmix
