// The split every backbone exposes so MS-Mix (and the mixup baselines) can mix between the unimodal
// encoders and the fusion, never inside a backbone (shared/spec/msmix.md, "Where mixing happens"):
//   encode(input) -> Representations{t, a, v}   (each [B, d] or [B, T, d])
//   fuse(reps)    -> ModelOutput{prediction [B, 1], auxiliary loss}
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "models/module.h"

namespace msmix {

class BertModel;

// One batch as a backbone sees it (CPU or CUDA tensors). Lengths are per sample, empty when unknown.
struct ModelInput {
  Tensor text;       // [B, Lt, Dt] frozen text features (or text_bert [B, 3, L] for BERT backbones)
  Tensor audio;      // [B, Ta, Da]
  Tensor vision;     // [B, Tv, Dv]
  Tensor text_bert;  // [B, 3, L] the file's token ids, mask and segments when it has them, whatever use_bert says
  std::vector<int64_t> audio_lengths, vision_lengths;
};

struct Representations {
  Representations() = default;
  Representations(Tensor t_, Tensor a_, Tensor v_) : t(std::move(t_)), a(std::move(a_)), v(std::move(v_)) {}

  Tensor t, a, v;
  // Optional: vectors mixed with t / a / v's pairs and ratios but never read by the pair selection or the
  // intensity predictors (GLoMo's local vectors, its global ones being t / a / v).
  Tensor t_fine, a_fine, v_fine;
  // Optional: a loss the encoders produced (rank 0, already weighted; GLoMo's experts' balance). Not mixed;
  // fuse() returns it in its aux_loss, so it counts once per step, for the originals.
  Tensor aux_loss;
  // When fuse() gets originals and mixed samples in one batch (concat_batches): how many rows, from the first,
  // are originals; 0 = all. A backbone whose own loss describes the batch (MISA's regularisers) computes it on
  // these rows only.
  int64_t original_rows = 0;
};

struct ModelOutput {
  Tensor prediction;  // [B, 1]
  Tensor aux_loss;    // rank-0 auxiliary loss already weighted, or undefined
};

class Backbone : public Module {
 public:
  virtual std::string name() const = 0;
  virtual Representations encode(const ModelInput& input) = 0;
  virtual ModelOutput fuse(const Representations& reps) = 0;
  ModelOutput forward(const ModelInput& input) { return fuse(encode(input)); }
  // The BERT a backbone fine-tunes on text_bert (use_bert=true), where the trainer loads bert_weights; none
  // by default.
  virtual BertModel* bert() { return nullptr; }
};

}  // namespace msmix
