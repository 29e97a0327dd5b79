// IntensityPredictor (shared/spec/msmix.md section 2): a one-layer self-attention regressor that reads one
// modality's representation and predicts a sentiment intensity I in (-3, 3) per sample. MS-Mix holds one
// per modality (separate weights); |I| steers the mixing ratios and the alignment loss.
//
//   x [B, d] (one token) or [B, T, d]
//   -> dimension_reducer: Linear(d, 1024)            only when d > 2000 (then d = 1024 below)
//   -> zero-pad the last dim to D = d rounded up to a multiple of num_heads
//   -> qkv_proj: Linear(D, 3D), split into Q, K, V [B, T, D]
//   -> per head h: softmax(Q_h K_h^T / sqrt(D / heads)) V_h over the sample's own T tokens; heads concatenated
//      (no output projection)
//   -> norm1: LayerNorm(D) of (x + attention)
//   -> mean over the T tokens -> output_proj: Linear(D, 1) -> 3 tanh -> I [B]
//
// Parameter names are the released code's (dimension_reducer, qkv_proj, norm1, output_proj), registered in
// its order, so its state dicts load as they are. The released module also builds a Dropout it never
// applies: none here.
#pragma once
#include <memory>

#include "models/layer_norm.h"
#include "models/linear.h"
#include "models/module.h"

namespace msmix {

class IntensityPredictor : public Module {
 public:
  const char* kind() const override { return "IntensityPredictor"; }
  static constexpr int64_t kReduceAbove = 2000;  // widths above this go through dimension_reducer
  static constexpr int64_t kReducedDim = 1024;
  static constexpr float kRange = 3.0f;          // I = 3 tanh(.)

  explicit IntensityPredictor(int64_t input_dim, int64_t num_heads = 4);
  Tensor forward(const Tensor& x);  // [B, d] or [B, T, d] -> [B]

  int64_t input_dim, num_heads;
  int64_t reduced_dim;  // input_dim, or 1024 when reduced
  int64_t padded_dim;   // reduced_dim rounded up to a multiple of num_heads
  int64_t head_dim;     // padded_dim / num_heads

  std::shared_ptr<Linear> dimension_reducer;  // null unless input_dim > 2000
  std::shared_ptr<Linear> qkv_proj, output_proj;
  std::shared_ptr<LayerNorm> norm1;
};

}  // namespace msmix
