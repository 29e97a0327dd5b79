// ALMT, the Adaptive Language-guided Multimodal Transformer (shared/spec/almt.md), as MMSA v2.2.1 builds it
// (models/singleTask/ALMT.py), with its state-dict names, on FROZEN text features:
//   embedding_{l,a,v}: Linear(D_m -> 128) then a Transformer (8 learned tokens prepended, positional table,
//     embedding_depth layers); the first 8 positions are kept: h_l, h_a, h_v [B, 8, 128]
//   l_encoder: h_l + its positional table, then AHL_depth - 1 layers: Z = [z0, z1, z2]
//   h_hyper_layer: H starts as h_hyper (1, 8, 128) of ones; AHL_depth hyper-modality layers, layer i reading Z[i]
//   fusion_layer: target [c; z2] attends to source [c; H] through fusion_layer_depth layers
//   regression_head: Linear(128 -> 1) of the target's position 0, unbounded.
// The blocks are models/almt_layers.h (pre-LayerNorm, exact GELU, no dropout).
//
// Text, two ways:
//   use_bert=true (the paper's, MMSA's): bertmodel (models/bert.h, bert-base-uncased's sizes) fine-tuned on the
//     file's text_bert token ids [B, 3, L], its last hidden states into embedding_l. Training needs
//     bert_weights (a pretrained BERT as safetensors, see load_bert_weights); the trainer refuses without.
//   use_bert=false (the default here): the file's text features, which MMSA's unaligned pickles fill with
//     BERT's last hidden states ([B, 50, 768] for MOSI): what a frozen BERT gives embedding_l, at a fraction
//     of the cost, and what runs without pretrained weights.
//
// Mixing point (shared/spec/msmix.md): h_l, h_a, h_v [B, 8, 128] after the embeddings, before the language
// encoder; fuse() runs the rest on whatever batch it is given.
#pragma once
#include <memory>
#include <string>

#include "models/almt_layers.h"
#include "models/backbone.h"
#include "models/bert.h"
#include "models/defaults.h"

namespace msmix {

// MMSA's ALMT entry for "mosi", "mosei", "sims" and "mosi-utterance" (MOSI's values with feature_length
// [1, 1, 1] and that file's widths), bert-base-uncased's sizes (bert_base_defaults; used with use_bert=true),
// plus the ALMT trainer's protocol: AdamW (lr 1e-4, weight decay 1e-4),
// batch 64, MSE loss, the per-epoch warmup + cosine schedule, early stop 32, at most 200 epochs. Keys in
// docs/backbones.md (ALMT section).
Config almt_defaults(const std::string& dataset);

class ALMT : public Backbone {
 public:
  const char* kind() const override { return "ALMT"; }
  // Reads feature_length, dst_feature_dims, dst_feature_hidden_dims, dst_embedding_length, embedding_depth,
  // embedding_heads, l_encoder_heads, AHL_depth, h_hyper_layer_heads, fusion_hidden_d, fusion_heads,
  // fusion_layer_depth, use_bert (and with it the bert_* sizes; dims.text must then be bert_hidden).
  ALMT(const FeatureDims& dims, const Config& config);
  std::string name() const override { return "almt"; }
  // text [B, Lt, Dt] (features; with use_bert text_bert [B, 3, Lt]), audio [B, Ta, Da], vision [B, Tv, Dv],
  // each no longer than its feature_length (lengths are not used, as MMSA) -> h_l, h_a, h_v [B, tokens, d].
  Representations encode(const ModelInput& input) override;
  ModelOutput fuse(const Representations& reps) override;  // prediction [B, 1], no aux loss
  BertModel* bert() override { return bertmodel ? bertmodel->model.get() : nullptr; }

  FeatureDims dims;
  bool use_bert;
  std::shared_ptr<BertTextEncoder> bertmodel;  // with use_bert only
  int64_t length_l, length_a, length_v, d, tokens, ahl_depth;
  Tensor h_hyper;  // (1, tokens, d), ones
  std::shared_ptr<Sequential> embedding_l, embedding_a, embedding_v;
  std::shared_ptr<Linear> project_l, project_a, project_v;                  // embedding_*.0
  std::shared_ptr<AlmtTransformer> embed_l, embed_a, embed_v;               // embedding_*.1
  std::shared_ptr<AlmtTransformer> l_encoder;
  std::shared_ptr<AlmtHyperEncoder> h_hyper_layer;
  std::shared_ptr<AlmtCrossTransformer> fusion_layer;
  std::shared_ptr<Linear> regression_head;

 private:
  Representations encode_features(const ModelInput& input);  // text as features [B, Lt, Dt]
};

}  // namespace msmix
