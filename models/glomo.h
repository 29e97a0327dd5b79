// GLoMo, Global-Local Modal fusion (ACM MM 2024), as shared/spec/glomo.md reads its authors' code:
//   text: g_t = text_global(H12[:, 0]); local: [H12; H11] along the tokens -> text_conv (Conv1d k 3, pad 1, no
//     bias) -> adaptive max pool to 3 slots
//   audio, vision: *_conv (Conv1d k 3, pad 1, no bias) -> a MulT-style encoder (sqrt(d) scaling, sinusoidal
//     positions, pre-norm layers, final LayerNorm); global = max over time, local = adaptive max pool to 3 slots
//   per modality, a mixture of experts (models/glomo_moe.h) on the flattened local [B, 3d] -> l_m [B, d]
//   fusion: the six vectors [g_t, l_t, g_a, l_a, g_v, l_v] as tokens through 2 post-norm TransformerEncoderLayers
//   head: global and local attention pools (att_global over Z0, Z2, Z4; att_local over Z1, Z3, Z5), A =
//     global_local([F_g; F_l]), m_x = modality_x([Z_2i; Z_2i+1]), C = sum_j w_g,j m_j, prediction =
//     head([A; C]).
// The auxiliary loss (the three experts' balance, weighted by moe_loss_weight) comes back from encode() in
// Representations::aux_loss and out of fuse().
//
// Text, two ways (as ALMT, models/almt.h): use_bert=true fine-tunes BERT (no pooler) on text_bert and reads
// its last two hidden states, the paper's model; use_bert=false (the default) reads the file's text features
// as H12 and, having no H11, convolves them alone.
//
// Inputs are word-aligned: audio and vision [B, L, D] step for step with the text (MMSA's aligned_50 files);
// lengths are not used. Mixing point (shared/spec/msmix.md): the global vectors g_t, g_a, g_v [B, d] are
// t / a / v (they drive the pair selection and the intensity predictors); the local ones l_t, l_a, l_v are
// t_fine / a_fine / v_fine, mixed with the same pairs and ratios.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/backbone.h"
#include "models/bert.h"
#include "models/conv1d.h"
#include "models/defaults.h"
#include "models/glomo_moe.h"
#include "models/linear.h"
#include "models/module_list.h"
#include "models/mult_transformer.h"
#include "models/transformer.h"

namespace msmix {

// GLoMo's settings for "mosi" and "mosei" (its authors ran those two) and "mosi-utterance" (MOSI's with that
// file's widths): d, encoder depth, experts, heads, dropouts, AdamW with weight decay 1e-4 except on biases and
// LayerNorm weights (names holding "bias" or "LayerNorm.weight"), lr x0.1 at epochs 80 and 100, batch size,
// epochs; L1 loss; model selection on the validation loss without an early stop. Keys in docs/backbones.md.
Config glomo_defaults(const std::string& dataset);

// GLoMo's head: s = fc2(ReLU(dropout(fc1([x1; x2; x3])))), w = softmax(s / sqrt(d)), fused = sum_j w_j x_j.
class GlomoAttentionPool : public Module {
 public:
  const char* kind() const override { return "ATT"; }
  GlomoAttentionPool(int64_t d, float dropout);
  struct Output {
    Tensor weights;  // [B, 3]
    Tensor fused;    // [B, d]
  };
  Output forward(const Tensor& x1, const Tensor& x2, const Tensor& x3);

  int64_t d;
  float dropout;
  std::shared_ptr<Linear> fc1, fc2;
};

class GLoMo : public Backbone {
 public:
  const char* kind() const override { return "GLoMo"; }
  // Reads d_model, encoder_layers, local_slots, num_experts, top_k, num_heads, attn_dropout, relu_dropout,
  // res_dropout, embed_dropout, moe_loss_weight, fusion_layers, fusion_ff, fusion_dropout, gate_dropout,
  // use_bert (and the bert_* sizes; dims.text must then be bert_hidden).
  GLoMo(const FeatureDims& dims, const Config& config);
  std::string name() const override { return "glomo"; }
  // text [B, L, Dt] features (use_bert: text_bert [B, 3, L]), audio [B, L, Da], vision [B, L, Dv] -> global
  // vectors t / a / v [B, d], local vectors *_fine [B, d], the experts' loss in aux_loss.
  Representations encode(const ModelInput& input) override;
  ModelOutput fuse(const Representations& reps) override;  // prediction [B, 1], aux_loss from encode
  BertModel* bert() override { return bert_model ? bert_model->model.get() : nullptr; }

  // The optimizer's two groups: weight decay for every parameter whose name holds neither "bias" nor
  // "LayerNorm.weight" (GLoMo's rule, applied to the same names), none for the rest.
  bool decays(const std::string& parameter_name) const;

  FeatureDims dims;
  int64_t d, slots;
  bool use_bert;
  std::shared_ptr<BertTextEncoder> bert_model;  // "bert", with use_bert only
  std::shared_ptr<Linear> text_global;
  std::shared_ptr<Conv1d> text_conv, audio_conv, vision_conv;
  std::shared_ptr<MultTransformerEncoder> audio_encoder, vision_encoder;
  std::shared_ptr<GlomoMoE> moe_t, moe_a, moe_v;
  std::shared_ptr<ModuleList<TransformerEncoderLayer>> fusion;
  std::shared_ptr<GlomoAttentionPool> att_global, att_local;
  std::shared_ptr<Linear> global_local, modality_t, modality_a, modality_v, head;
};

// AdaptiveMaxPool1d over time: x [B, L, C] -> [B, C, slots], slot i the max over steps
// [floor(i L / slots), ceil((i + 1) L / slots)).
Tensor adaptive_max_pool_time(const Tensor& x, int64_t slots);

}  // namespace msmix
