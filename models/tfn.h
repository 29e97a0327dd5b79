// TFN, Tensor Fusion Network (MMSA models/singleTask/TFN.py). Sub-networks as LF_DNN; each output gets a
// constant 1 in front, and the three are fused by their 3-way outer product:
//   f[b, (i * (V+1) + j) * (T+1) + k] = a'[b, i] * v'[b, j] * t'[b, k],   a' = [1, a] etc.
// (MOSI: 33 x 129 x 33 = 140,481 values), then Dropout -> Linear + ReLU -> Linear + ReLU -> Linear 1 ->
// sigmoid * output_range + output_shift (6 and -3: predictions in (-3, 3) on every dataset, SIMS included).
// output_range / output_shift are parameters that do not require grad, as in MMSA (they are in its
// state_dict, first, and MMSA's optimizer skips them).
//
// Mixing point: the vectors with the 1 in front, t [B, text_out + 1], a [B, audio_hidden + 1],
// v [B, video_hidden + 1] (MOSI: 33 / 33 / 129). A convex mix keeps the leading 1.
#pragma once
#include <memory>

#include "models/backbone.h"
#include "models/defaults.h"
#include "models/subnets.h"

namespace msmix {

class TFN : public Backbone {
 public:
  const char* kind() const override { return "TFN"; }
  TFN(const FeatureDims& dims, const Config& config);
  std::string name() const override { return "tfn"; }
  Representations encode(const ModelInput& input) override;
  ModelOutput fuse(const Representations& reps) override;  // prediction [B, 1] in (-3, 3), no aux loss

  FeatureDims dims;
  int64_t text_hidden, audio_hidden, video_hidden, text_out, post_fusion_dim;
  Tensor output_range, output_shift;  // [1] each, no grad
  std::shared_ptr<SubNet> audio_subnet, video_subnet;
  std::shared_ptr<TextSubNet> text_subnet;
  std::shared_ptr<Dropout> post_fusion_dropout;
  std::shared_ptr<Linear> post_fusion_layer_1, post_fusion_layer_2, post_fusion_layer_3;
};

}  // namespace msmix
