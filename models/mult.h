// MulT, the Multimodal Transformer, as MMSA v2.2.1 builds it (models/singleTask/MULT.py, use_bert false):
//   text dropout -> Conv1d projections (no bias, no padding, kernel per modality; skipped when a modality's
//   width already equals d) to d = dst_feature_dim_nheads[0]
//   -> six cross-modal encoders (l<-a, l<-v, a<-l, a<-v, v<-l, v<-a), nlevels layers of width d, separate
//      weights each; per target modality the two outputs concatenated to 2d
//   -> three self-attention encoders (trans_l_mem, trans_a_mem, trans_v_mem) of width 2d, max(nlevels, 3) layers
//   -> the last time step of each, concatenated (6d) -> proj1 -> ReLU -> dropout -> proj2, + input (residual)
//   -> out_layer -> prediction [B, 1], unbounded.
// Encoders: models/mult_transformer.h (sqrt(d) input scaling, pre-LayerNorm, FFN 4x, final LayerNorm, no
// positional embedding, MMSA's attention mask when attn_mask is set, which MMSA's config does).
// Attention dropout per encoder as MMSA's get_network picks it (by the KEY modality of the pair):
//   l<-a, v<-a: attn_dropout_a;  l<-v, a<-v: attn_dropout_v;  a<-l, v<-l and the three *_mem: attn_dropout.
//
// Mixing point (shared/spec/msmix.md): the projected sequences, t [B, Lt - kl + 1, d],
// a [B, Ta - ka + 1, d], v [B, Tv - kv + 1, d], after the Conv1d, before any attention. fuse() takes them
// in any mix (same lengths as encode() gives), so encode -> mix -> fuse is exactly MMSA's forward.
//
// Sequences shorter than a kernel (e.g. shared/data/mosi-utterance: one step per modality) are a
// configuration error raised by encode(), naming the kernel key to set to 1; mult_defaults("mosi-utterance")
// already does.
#pragma once
#include <memory>
#include <string>

#include "models/backbone.h"
#include "models/conv1d.h"
#include "models/defaults.h"
#include "models/linear.h"
#include "models/mult_transformer.h"

namespace msmix {

// MMSA's MulT defaults for "mosi", "mosei", "sims" (config_regression.json's mult entry plus what its
// trainer hard-codes), and "mosi-utterance" (MOSI's values with every kernel 1 and that file's widths
// [100, 73, 100]). A flat object; keys in docs/backbones.md (MulT section). Without "model" / "dataset" /
// "feature_dims" for the MMSA datasets: backbone_defaults() adds those.
Config mult_defaults(const std::string& dataset);

class MULT : public Backbone {
 public:
  const char* kind() const override { return "MulT"; }
  // Reads dst_feature_dim_nheads, nlevels, conv1d_kernel_size_{l,a,v}, attn_dropout{,_a,_v}, relu_dropout,
  // embed_dropout, res_dropout, output_dropout, text_dropout, attn_mask.
  MULT(const FeatureDims& dims, const Config& config);
  std::string name() const override { return "mult"; }
  // text [B, Lt, Dt], audio [B, Ta, Da], vision [B, Tv, Dv] (lengths are not used, as MMSA) -> the projected
  // sequences [B, T', d].
  Representations encode(const ModelInput& input) override;
  ModelOutput fuse(const Representations& reps) override;  // prediction [B, 1], no aux loss

  FeatureDims dims;
  int64_t d, num_heads, nlevels, kernel_l, kernel_a, kernel_v;
  float attn_dropout, attn_dropout_a, attn_dropout_v, relu_dropout, embed_dropout, res_dropout, output_dropout,
      text_dropout;
  bool attn_mask;
  std::shared_ptr<Conv1d> proj_l, proj_a, proj_v;
  std::shared_ptr<MultTransformerEncoder> trans_l_with_a, trans_l_with_v, trans_a_with_l, trans_a_with_v,
      trans_v_with_l, trans_v_with_a, trans_l_mem, trans_a_mem, trans_v_mem;
  std::shared_ptr<Linear> proj1, proj2, out_layer;

 private:
  Tensor project(const Tensor& x, const Conv1d& conv, int64_t width, const char* modality, const char* kernel_key);
};

}  // namespace msmix
