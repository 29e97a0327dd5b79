// MultiMix (Venkataramanan, Kijak, Amsaleg, Avrithis, "Teach me how to Interpolate a Myriad of Embeddings"):
// instead of B pairs with one scalar lambda, N mixed samples, each a convex combination of the whole batch with
// a vector of weights lambda_k ~ Dirichlet(alpha, ..., alpha) over the B samples. One of the baselines the
// MS-Mix paper compares against (shared/spec/msmix.md), read here for the same hook and loss plumbing:
//
//   W [N, B], rows on the simplex           (drawn on the host, before the step: it depends on B alone)
//   zhat^m = W z^m                          [N, d] or [N, T, d]; the same W for t, a, v (and GLoMo's fine vectors)
//   ytilde = W y                            [N]
//   L_mix  = mean_k sum_i W_ki (yhat_k - y_i)^2   (the pair loss with B terms: the gradient of MSE to ytilde)
//   L      = L_task + w_mix L_mix
//
// With two non-zero weights in a row this is Mixup's pair; with B = 2, Dirichlet(alpha, alpha) is Mixup's
// Beta(alpha, alpha). What the paper has and this reading leaves out, and why, is in docs/msmix.md.
#pragma once
#include <cstdint>
#include <vector>

#include "msmix/mixing.h"

namespace msmix {

// N rows of B weights, row-major: each row B Gamma(alpha) draws divided by their sum, i.e. Dirichlet(alpha 1_B).
// (A row whose draws all underflow to 0, possible only for a tiny alpha, becomes one-hot at its first sample.)
std::vector<float> draw_dirichlet_rows(int64_t N, int64_t B, float alpha, Generator& gen);

// weights [N, B] times z [B, d] or [B, T, d], row by row: [N, d] or [N, T, d]. Differentiable in both.
Tensor mix_weighted(const Tensor& z, const Tensor& weights);

// mean_k sum_i weights[k, i] (prediction_k - labels_i)^2; prediction [N] or [N, 1], labels [B], weights [N, B].
Tensor weighted_mix_loss(const Tensor& prediction, const Tensor& labels, const Tensor& weights);

class MultiMix : public Mixer {
 public:
  explicit MultiMix(const MixConfig& config);
  using Mixer::mix;
  // Mixed samples per batch of B: config.mix_count, or B when it is 0.
  int64_t mixed_count(int64_t B) const { return config.mix_count > 0 ? config.mix_count : B; }
  // The N x B weights, row-major: [N * B].
  Tensor draw(int64_t B, Generator& gen, Device device) const override;
  MixResult mix(const Representations& reps, const Tensor& labels, const Tensor& draws) override;
};

}  // namespace msmix
