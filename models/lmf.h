// LMF, Low-rank Multimodal Fusion (MMSA models/singleTask/LMF.py). Sub-networks as TFN, with text_out =
// text hidden / 2 (MMSA derives it; there is no text_out key). Each output gets a constant 1 in front and
// goes through its rank-r factor, the three products are multiplied element-wise and summed over the rank
// with learned weights:
//   f_m = z_m @ m_factor   ([B, d_m + 1] @ [r, d_m + 1, 1] -> [r, B, 1])
//   prediction = fusion_weights [1, r] @ (f_a * f_v * f_t) + fusion_bias   -> [B, 1], no squashing.
// Factors and fusion_weights start xavier-normal, fusion_bias at 0.
//
// MMSA's optimizer quirk: its LMF trainer builds Adam from parameters()[:3] (the factors, lr factor_lr) and
// parameters()[5:] (the sub-networks, lr learning_rate), both with weight_decay, so fusion_weights and
// fusion_bias never train. parameter_groups() reproduces that unless include_fusion is set (config key
// train_fusion_weights).
//
// Mixing point: the vectors with the 1 in front, t [B, text_hidden / 2 + 1], a [B, audio_hidden + 1],
// v [B, video_hidden + 1] (MOSI: 65 / 17 / 129).
#pragma once
#include <memory>
#include <vector>

#include "models/backbone.h"
#include "models/defaults.h"
#include "models/subnets.h"

namespace msmix {

class LMF : public Backbone {
 public:
  const char* kind() const override { return "LMF"; }
  LMF(const FeatureDims& dims, const Config& config);
  std::string name() const override { return "lmf"; }
  Representations encode(const ModelInput& input) override;
  ModelOutput fuse(const Representations& reps) override;  // prediction [B, 1], no aux loss

  // Named groups "factors" (lr factor_lr) and "subnets" (lr learning_rate), both with weight_decay, plus
  // "fusion" (fusion_weights, fusion_bias; lr learning_rate) only when include_fusion.
  std::vector<NamedParamGroup> parameter_groups(float learning_rate, float factor_lr, float weight_decay,
                                                bool include_fusion) const;

  FeatureDims dims;
  int64_t text_hidden, audio_hidden, video_hidden, text_out, rank;
  Tensor audio_factor, video_factor, text_factor;  // [r, d + 1, 1]
  Tensor fusion_weights, fusion_bias;              // [1, r], [1, 1]
  std::shared_ptr<SubNet> audio_subnet, video_subnet;
  std::shared_ptr<TextSubNet> text_subnet;
  std::shared_ptr<Dropout> post_fusion_dropout;  // built as in MMSA, never applied there either
};

}  // namespace msmix
