// Mixing between a backbone's encode() and fuse(): MS-Mix (shared/spec/msmix.md) and the baselines it is
// compared with, behind one interface.
//
//   Representations reps = backbone.encode(input);
//   MixResult r = mixer->mix(reps, labels, gen);                     // nothing mixed in eval mode
//   // or, split: the draws on the host first (they depend on B alone), then a mix that needs no host:
//   MixResult r = mixer->mix(reps, labels, mixer->draw(B, gen, device));
//   Representations both = r.active ? concat_batches(reps, r.mixed) : reps;  // [2B, ...]: one fuse
//   Tensor pred = backbone.fuse(both).prediction;                    // [2B, 1]
//   Tensor loss = mixer->total_loss(task_loss(pred[:B], y), pred[B:], r);
//
// MSMix: SASS picks B similar pairs (i_k, j_k); per-modality ratios lambda^m come from the intensity
// predictors (SIG) and one Beta(alpha, alpha) draw per pair; mixed z^m = lambda^m z_i + (1 - lambda^m) z_j;
// the label ratio lambda^L is the mean of the three. L = L_task + w_mix L_mix + w_sal L_SAL.
// Mixup: one lambda ~ Beta(alpha, alpha) for the batch, pairs (k, perm(k)) from a random permutation,
// the same lambda for every modality and the label. Manifold: Mixup at a layer drawn among the backbone's
// mixable layers (today the representations only). MultiMix (msmix/multimix.h): N mixed samples, each the
// whole batch weighted by a Dirichlet draw. None: never mixes.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/random.h"
#include "models/backbone.h"
#include "msmix/intensity_predictor.h"
#include "msmix/sample_selection.h"

namespace msmix {

enum class MixMethod { None, Mixup, Manifold, MultiMix, MSMix };
std::string mix_method_name(MixMethod method);         // "none", "mixup", "manifold", "multimix", "msmix"
MixMethod parse_mix_method(const std::string& name);   // the inverse; an unknown name is an error

// Every constant of the method; the comment gives the command-line flag.
struct MixConfig {
  MixMethod method = MixMethod::MSMix;  // --mix
  float delta = 0.4f;                   // --mix-delta   SASS threshold on the normalised similarity
  float alpha = 2.0f;                   // --mix-alpha   Beta(alpha, alpha) for lambda_base (and Mixup);
                                        //               Dirichlet(alpha, ..., alpha) for MultiMix
  int64_t heads = 4;                    // --mix-heads   attention heads of each intensity predictor
  float w_mix = 0.7f;                   // --mix-weight  weight of L_mix in the total loss
  float w_sal = 0.5f;                   // --sal-weight  weight of L_SAL in the total loss
  float sal_scale = 1000.0f;            // --sal-scale   the factor inside L_SAL
  float label_scale = 3.0f;             // --sal-s       s in |y| / s and |I| / s: 3 (MOSI, MOSEI), 1 (SIMS)
  float eps = 1e-8f;                    // --mix-eps     in the min-max of |I| and in lambda_adapt
  int64_t mix_count = 0;                // mix_count     MultiMix's mixed samples per batch (0: B, as the others)
  // Not in the spec, an experiment (run key mix_center, default off): the intensity predictors read each
  // representation minus its batch mean, so a pattern every sample shares cannot set all intensities alike
  // (on utterance-level MOSI it drove them to the +-3 bound: docs/results.md).
  bool center_intensity_input = false;
};
// s for a dataset name: 1 for "sims" (labels in [-1, 1]), else 3.
float label_scale_for(const std::string& dataset);

// ---- the ratio and mixing steps, as free functions (tests call them with fixed inputs)

// w = |I| min-max normalised over the batch: (|I| - min) / (max - min + eps).   [B] -> [B]
Tensor intensity_weights(const Tensor& intensity, float eps);

struct MixRatios {
  Tensor t, a, v;  // lambda^m [B]
  Tensor label;    // lambda^L [B] = (lambda^t + lambda^a + lambda^v) / 3
};
// For pairs k = (index_i[k], index_j[k]) (float indices [B]) and lambda_base [B]:
// lambda^m = (lambda_base + (w_i + eps) / (w_i + w_j + 2 eps)) / 2 with w = intensity_weights(I^m).
// Differentiable in the intensities.
MixRatios mixing_ratios(const Tensor& intensity_t, const Tensor& intensity_a, const Tensor& intensity_v,
                        const Tensor& index_i, const Tensor& index_j, const Tensor& lambda_base, float eps);

// lambda z[i] + (1 - lambda) z[j], row by row: z [B, d] or [B, T, d], lambda [N] -> [N, ...].
Tensor mix_rows(const Tensor& z, const Tensor& index_i, const Tensor& index_j, const Tensor& lambda);

// mean_k [ lambda_k (pred_k - y_i)^2 + (1 - lambda_k) (pred_k - y_j)^2 ]; pred [N] or [N, 1], the rest [N].
Tensor pair_mix_loss(const Tensor& prediction, const Tensor& labels_i, const Tensor& labels_j,
                     const Tensor& lambda_label);

// [B, ...] and [N, ...] per modality -> [B + N, ...] (originals first, as the released code feeds fusion).
Representations concat_batches(const Representations& first, const Representations& second);

// ---- what one mixing step hands the trainer

struct MixResult {
  bool active = false;  // false: nothing mixed (eval mode, or method none); the fields below are unset
  std::string layer;    // where it mixed: "representations"
  Representations mixed;               // [B, d] or [B, T, d] per modality, B mixed samples
  Tensor index_i, index_j;             // [B] the pairs (i_k, j_k) as bounded indices, on the mixing device
  Tensor labels;                       // [B] the original labels (always set)
  Tensor labels_i, labels_j;           // [B] y[i_k], y[j_k]
  Tensor lambda_base;                  // [B] the Beta draws (Mixup: B copies of its one draw)
  Tensor lambda_t, lambda_a, lambda_v; // [B] per-modality ratios
  Tensor lambda_label;                 // [B] lambda^L
  Tensor mixed_labels;                 // [B] lambda^L y_i + (1 - lambda^L) y_j
  Tensor intensity_t, intensity_a, intensity_v;  // [B] MS-Mix: I^m of the original samples
  Tensor selection;                    // MS-Mix: what SASS did, [4] (select_pairs' stats); diagnostics only
  // MultiMix instead of pairs: mixed sample k = sum_i weights[k, i] sample i, [N, B]. When it is set, the pair
  // fields above (index_i .. lambda_label) are unset; mixed and mixed_labels hold N rows.
  Tensor weights;
};
// The pairs read back to the host (tests, diagnostics): (index_i[k], index_j[k]); empty when inactive or
// when the mixer mixes with weights (MultiMix).
std::vector<MixPair> host_pairs(const MixResult& r);

// For the mixers' mix(): checks the three representations and the labels agree on B (> 0) and returns the
// labels as [B]; checks that `draws` is [n] on the representations' device (what draw() gave for the batch).
Tensor checked_labels(const std::string& who, const Representations& reps, const Tensor& labels);
void check_draws(const std::string& who, const Tensor& draws, int64_t n, const Representations& reps);

enum class TaskLoss { L1, MSE };

class Mixer : public Module {
 public:
  const char* kind() const override { return "Mixer"; }
  // config.method is set to `method`: the object is what it is, whatever the config said.
  Mixer(const MixConfig& config, MixMethod method);
  std::string name() const { return mix_method_name(config.method); }

  // Everything a training step of batch size B draws from `gen`, drawn now on the host (it depends on B alone,
  // never on the data), as one tensor on `device` for mix(); undefined for none. A step that takes its draws
  // this way needs no host in between, so a CUDA graph can replay it with each step's draws copied in.
  virtual Tensor draw(int64_t B, Generator& gen, Device device) const = 0;
  // labels [B] or [B, 1]; draws: what draw(B, ...) gave, unread in eval mode (which mixes nothing).
  virtual MixResult mix(const Representations& reps, const Tensor& labels, const Tensor& draws) = 0;
  // Both: the draws only when it mixes (training mode), so eval draws nothing.
  MixResult mix(const Representations& reps, const Tensor& labels, Generator& gen);
  // L_mix on the N mixed predictions ([N] or [N, 1]; N = B but for MultiMix's mix_count); 0 when inactive.
  Tensor mix_loss(const Tensor& mixed_prediction, const MixResult& r) const;
  // L_SAL (MS-Mix); 0 for the baselines and when inactive.
  virtual Tensor alignment_loss(const MixResult& r) const;
  // L = task_loss + w_mix L_mix + w_sal L_SAL (just task_loss when inactive). task_loss: the backbone's
  // own loss on the original predictions, auxiliary terms included.
  Tensor total_loss(const Tensor& task_loss, const Tensor& mixed_prediction, const MixResult& r) const;
  // The same total with its mixing terms (one value each; undefined when inactive, sal also for the baselines),
  // so a caller that reports them computes them once.
  struct LossTerms {
    Tensor total, mix, sal;
  };
  LossTerms loss_terms(const Tensor& task_loss, const Tensor& mixed_prediction, const MixResult& r) const;
  // The same, with L_task = L1 or MSE between `prediction` [B] or [B, 1] and the original labels.
  Tensor total_loss(const Tensor& prediction, const Tensor& mixed_prediction, const MixResult& r,
                    TaskLoss task) const;

  MixConfig config;
};

// Never mixes.
class NoMix : public Mixer {
 public:
  explicit NoMix(const MixConfig& config);
  using Mixer::mix;
  Tensor draw(int64_t B, Generator& gen, Device device) const override;
  MixResult mix(const Representations& reps, const Tensor& labels, const Tensor& draws) override;
};

// Mixup on the representations: one lambda ~ Beta(alpha, alpha) per batch, pairs (k, perm(k)) from a
// Fisher-Yates permutation drawn first (k may meet itself, as in Mixup). Draws: [0 .. B-1, perm, lambda].
class Mixup : public Mixer {
 public:
  explicit Mixup(const MixConfig& config);
  using Mixer::mix;
  Tensor draw(int64_t B, Generator& gen, Device device) const override;
  MixResult mix(const Representations& reps, const Tensor& labels, const Tensor& draws) override;
};

// Manifold Mixup: draws the layer (randint over `layers`), then mixes there as Mixup. A backbone offers
// the representations today; a backbone that exposes more hidden layers later extends `layers`, and the
// trainer runs encode/fuse around the drawn one (see docs/msmix.md).
class ManifoldMixup : public Mixer {
 public:
  explicit ManifoldMixup(const MixConfig& config, std::vector<std::string> layers = {"representations"});
  using Mixer::mix;
  // The layer's index first, then Mixup's draws: [layer, 0 .. B-1, perm, lambda].
  Tensor draw(int64_t B, Generator& gen, Device device) const override;
  MixResult mix(const Representations& reps, const Tensor& labels, const Tensor& draws) override;
  std::vector<std::string> layers;
};

// MS-Mix: three intensity predictors (children "text", "audio", "vision"), SASS, SIG ratios, SAL.
class MSMix : public Mixer {
 public:
  // dims: the last dim of each modality's representation (d of [B, d] or [B, T, d]).
  MSMix(const MixConfig& config, int64_t dim_t, int64_t dim_a, int64_t dim_v);
  using Mixer::mix;
  // The selection's draws, then one Beta draw per pair: [B * 4 (selection_draws), lambda_base (B)].
  Tensor draw(int64_t B, Generator& gen, Device device) const override;
  MixResult mix(const Representations& reps, const Tensor& labels, const Tensor& draws) override;
  Tensor alignment_loss(const MixResult& r) const override;

  SampleSelector selector;
  std::shared_ptr<IntensityPredictor> text, audio, vision;
};

// The mixer `config.method` names; dims are used by MS-Mix only.
std::shared_ptr<Mixer> make_mixer(const MixConfig& config, int64_t dim_t, int64_t dim_a, int64_t dim_v);

}  // namespace msmix
