#include "msmix/multimix.h"

#include "engine/error.h"
#include "ops/ops.h"

namespace msmix {

std::vector<float> draw_dirichlet_rows(int64_t N, int64_t B, float alpha, Generator& gen) {
  MSMIX_CHECK(N > 0 && B > 0 && alpha > 0, "draw_dirichlet_rows: N ({}), B ({}) and alpha ({}) must be positive", N, B,
              alpha);
  std::vector<float> weights(size_t(N * B));
  std::vector<double> draws(static_cast<size_t>(B));
  for (int64_t k = 0; k < N; ++k) {
    double total = 0;
    for (int64_t i = 0; i < B; ++i) total += draws[size_t(i)] = gen.gamma(alpha);
    float* row = weights.data() + k * B;
    if (total > 0) {
      for (int64_t i = 0; i < B; ++i) row[i] = float(draws[size_t(i)] / total);
    } else {
      row[0] = 1.0f;  // the others stay 0
    }
  }
  return weights;
}

Tensor mix_weighted(const Tensor& z, const Tensor& weights) {
  MSMIX_CHECK(z.defined() && (z.dim() == 2 || z.dim() == 3) && weights.defined() && weights.dim() == 2 &&
                  weights.size(1) == z.size(0),
              "mix_weighted: expected z [B, d] or [B, T, d] and weights [N, B], got z {} and weights {}", describe(z),
              describe(weights));
  const int64_t B = z.size(0), N = weights.size(0);
  Shape out = z.shape();
  out[0] = N;
  // [N, B] @ [B, T * d]: every token position mixed with the sample's weights.
  return reshape(matmul(weights, reshape(z, {B, z.numel() / B})), out);
}

Tensor weighted_mix_loss(const Tensor& prediction, const Tensor& labels, const Tensor& weights) {
  const bool ok = prediction.defined() && labels.defined() && weights.defined() && labels.dim() == 1 &&
                  weights.dim() == 2 && weights.size(1) == labels.size(0) &&
                  (prediction.dim() == 1 || (prediction.dim() == 2 && prediction.size(1) == 1)) &&
                  prediction.size(0) == weights.size(0);
  MSMIX_CHECK(ok,
              "weighted_mix_loss: expected prediction [N] or [N, 1], labels [B] and weights [N, B], got {}, {} and {}",
              describe(prediction), describe(labels), describe(weights));
  const int64_t N = weights.size(0), B = weights.size(1);
  Tensor diff = sub(reshape(prediction, {N, 1}), reshape(labels, {1, B}));  // [N, B]: yhat_k - y_i
  return mean(sum(mul(weights, mul(diff, diff)), {1}));
}

MultiMix::MultiMix(const MixConfig& config_) : Mixer(config_, MixMethod::MultiMix) {}

Tensor MultiMix::draw(int64_t B, Generator& gen, Device device) const {
  const int64_t N = mixed_count(B);
  return Tensor::from_vector(draw_dirichlet_rows(N, B, config.alpha, gen), {N * B}, device);
}

MixResult MultiMix::mix(const Representations& reps, const Tensor& labels, const Tensor& draws) {
  MixResult r;
  r.labels = checked_labels("multimix", reps, labels);
  if (!is_training()) return r;
  const int64_t B = r.labels.size(0), N = mixed_count(B);
  check_draws("multimix", draws, N * B, reps);
  r.active = true;
  r.layer = "representations";
  r.weights = reshape(draws, {N, B});
  r.mixed = {mix_weighted(reps.t, r.weights), mix_weighted(reps.a, r.weights), mix_weighted(reps.v, r.weights)};
  if (reps.t_fine.defined()) {  // the same weights (GLoMo's local vectors)
    r.mixed.t_fine = mix_weighted(reps.t_fine, r.weights);
    r.mixed.a_fine = mix_weighted(reps.a_fine, r.weights);
    r.mixed.v_fine = mix_weighted(reps.v_fine, r.weights);
  }
  r.mixed_labels = reshape(matmul(r.weights, reshape(r.labels, {B, 1})), {N});
  return r;
}

}  // namespace msmix
