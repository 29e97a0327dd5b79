// LF_DNN (MMSA models/singleTask/LF_DNN.py): late fusion with a DNN. Each modality through its own
// sub-network (SubNet for audio / video, TextSubNet for text), the three vectors concatenated in the order
// (audio, video, text), then Dropout -> Linear + ReLU -> Linear + ReLU -> Linear 1, no output squashing.
//
// Mixing point: the sub-network outputs themselves (LF_DNN appends no constant):
//   t [B, text_out], a [B, audio_hidden], v [B, video_hidden].
// Config keys: hidden_dims (text, audio, video), text_out, post_fusion_dim, dropouts (audio, video, text,
// post-fusion); see models/defaults.h.
#pragma once
#include <memory>

#include "models/backbone.h"
#include "models/defaults.h"
#include "models/subnets.h"

namespace msmix {

class LFDNN : public Backbone {
 public:
  const char* kind() const override { return "LF_DNN"; }
  LFDNN(const FeatureDims& dims, const Config& config);
  std::string name() const override { return "lf_dnn"; }
  // text [B, T, Dt]; audio and vision averaged over time, [B, 1, D] or [B, D]. Lengths are not used.
  Representations encode(const ModelInput& input) override;
  ModelOutput fuse(const Representations& reps) override;  // prediction [B, 1], no aux loss

  FeatureDims dims;
  int64_t text_hidden, audio_hidden, video_hidden, text_out, post_fusion_dim;
  std::shared_ptr<SubNet> audio_subnet, video_subnet;
  std::shared_ptr<TextSubNet> text_subnet;
  std::shared_ptr<Dropout> post_fusion_dropout;
  std::shared_ptr<Linear> post_fusion_layer_1, post_fusion_layer_2, post_fusion_layer_3;
};

}  // namespace msmix
