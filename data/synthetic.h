// Synthetic MMSA-shaped datasets: the embedded default, no file needed. Shapes and dims follow MMSA's
// feature files; labels are a known function of the features, so a test can check that a model learns and
// how close it gets to the best achievable error. The generative model (docs/data.md has the formulas):
//   z ~ N(0, (bound/2)^2)                       latent sentiment per sample (bound 3, or 1 for SIMS)
//   c_m = z (+ a per-modality deviation on SIMS), sign-flipped for audio/vision on "conflicting" samples
//   x_m[t] = strength_m * (c_m / sd_z) * dir_m + offset_m + noise_m[t]   on the valid steps, 0 on padding
//   label = clip(z + eps, -bound, bound); SIMS also label_m = clip(c_m + eps_m, -bound, bound)
// dir_m is a fixed random unit vector on a few dims of modality m; the other dims are pure distractors.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace msmix {

struct SyntheticOptions {
  int64_t train = 256, valid = 64, test = 128;  // samples per split (small: trains on 2 cores in ~a minute)
  double size_scale = 1;       // multiplies the three counts above
  int64_t max_steps = 0;       // > 0: cut every sequence (text, audio, vision) to at most this many steps
  bool pad_left = false;       // padding side of the sequences (MMSA-FET pads at the end: right)
  bool with_text_bert = false;  // also fill text_bert [N, 3, L] (ids with one "sentiment word", mask, segments)
  float text_strength = 2.0f, audio_strength = 1.0f, vision_strength = 0.7f;
  float sample_noise = 0.3f;       // std of a per-sample offset on every dim (does not average out over time)
  float step_noise = 1.0f;         // std of the per-step noise on every dim
  float conflict_fraction = 0.15f;  // samples whose audio and vision carry the opposite sign
  float label_noise = 0.1f;         // std of eps, as a fraction of the label bound (0.3 on MOSI, 0.1 on SIMS)
  float unimodal_deviation = 0.3f;  // SIMS: std of c_m - z, as a fraction of the bound
  float min_length_fraction = 0.3f;  // valid lengths are uniform in [ceil(fraction * T), T]
};

// How modality m carries its signal: x . direction over `dims` reads out strength * c_m / sd_z.
struct ModalitySignal {
  std::vector<int64_t> dims;    // the few signal-carrying feature dims
  std::vector<float> direction;  // unit vector over those dims
  float strength = 0;
};

struct SyntheticDataset {
  Dataset dataset;
  // The Bayes-optimal MAE: the predictor that knows z predicts clip(z) (the median of label | z, as eps is
  // symmetric); its mean |label - clip(z)| on the test split, about label_noise_std * sqrt(2 / pi).
  double best_test_mae = 0;
  double label_noise_std = 0;
  ModalitySignal text, audio, vision;
};

// name: "mosi", "mosei", "sims" (unaligned dims), "mosi-aligned", "mosei-aligned" (50 steps each).
// Everything is reproducible from the seed. Throws on an unknown name or bad options.
SyntheticDataset make_synthetic(const std::string& name, uint64_t seed, const SyntheticOptions& options = {});

// The names make_synthetic accepts.
std::vector<std::string> synthetic_names();

}  // namespace msmix
