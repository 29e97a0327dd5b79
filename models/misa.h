// MISA, Modality-Invariant and -Specific Representations (Hazarika et al., ACM MM 2020), as MMSA v2.2.1 builds
// it (models/singleTask/MISA.py, shared/spec/mmsa.md), with its state-dict names:
//   text: BERT's last hidden states averaged over the mask's tokens [B, 768]
//   audio, vision: BiLSTM (width = the input width) -> LayerNorm -> BiLSTM over each sample's steps; the final
//     states of both, [h1 fwd, h2 fwd, h1 bwd, h2 bwd] -> [B, 4 D_m]
//   project_m: Linear -> ReLU -> LayerNorm to hidden_size: u_m [B, 128] (MMSA's utt_m_orig)
//   private_m / shared (one for all three): Linear + Sigmoid -> p_m, s_m; recon_m: Linear of p_m + s_m
//   the six vectors [p_t, p_v, p_a, s_t, s_v, s_a] as tokens through one post-norm TransformerEncoderLayer
//     (2 heads, feed-forward 2048, dropout 0.1) -> concat [B, 768] -> fusion: Linear 384 -> Dropout -> ReLU ->
//     Linear 1, unbounded.
// Loss (the trainer's MSE plus fuse()'s aux_loss): diff_weight x the soft orthogonality of (p_t, s_t), (p_v, s_v),
// (p_a, s_a), (p_a, p_t), (p_a, p_v), (p_t, p_v) + sim_weight x the mean 5-moment CMD of the shared pairs (t, v),
// (t, a), (a, v) + recon_weight x the mean of the three reconstruction MSEs against u_m (models/misa_losses.h).
// MMSA's use_cmd_sim=true; its adversarial alternative (discriminator, gradient reversal) is not built and
// use_cmd_sim=false is refused (MMSA v2.2.1's trainer cannot run it either: docs/backbones.md).
//
// Lengths, as MMSA: with use_bert the text mask's token counts are every modality's lengths (MMSA runs the
// audio and vision LSTMs over the first len(text) steps, aligned data or not). Without BERT, audio and vision run
// over their own lengths from the file (all steps where it has none).
//
// Text, two ways (as ALMT and GLoMo): use_bert=true fine-tunes bertmodel on text_bert [B, 3, L], MMSA's model;
// use_bert=false (the default here) reads the file's text features [B, L, Dt] as BERT's hidden states and
// averages them over text_bert's mask when the file has one (ModelInput::text_bert), else over all L steps.
//
// Parameters MMSA registers but never runs are kept, so its state dicts load name for name: sp_discriminator
// (its outputs feed no loss with use_cmd_sim) and tlayer_norm (for a text LSTM the BERT model does not have).
// They get no grad.
//
// Mixing point (shared/spec/msmix.md): u_t, u_a, u_v [B, hidden_size] after the projections, before the
// private and shared encoders. The regularisers describe the batch (means over it), so fuse() computes them on
// the originals only (Representations::original_rows) when it is given originals and mixed samples.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/backbone.h"
#include "models/bert.h"
#include "models/defaults.h"
#include "models/layer_norm.h"
#include "models/linear.h"
#include "models/lstm.h"
#include "models/module_list.h"
#include "models/transformer.h"

namespace msmix {

// MMSA's MISA entry for "mosi", "mosei", "sims" and "mosi-utterance" (MOSI's values): hidden_size 128,
// dropout, the three loss weights, batch size, Adam at 1e-4 without weight decay (the trainer passes none),
// gradient clipping by value, gradients accumulated over 2 batches, MSE loss, early stop 8;
// bert-base-uncased's sizes for use_bert=true. Keys in docs/backbones.md (MISA section).
Config misa_defaults(const std::string& dataset);

class MISA : public Backbone {
 public:
  const char* kind() const override { return "MISA"; }
  // Reads hidden_size, dropout, transformer_heads, transformer_ff, transformer_dropout, diff_weight,
  // sim_weight, recon_weight, cmd_moments, use_bert (and the bert_* sizes; dims.text must then be bert_hidden).
  MISA(const FeatureDims& dims, const Config& config);
  std::string name() const override { return "misa"; }
  // text [B, L, Dt] features (use_bert: text_bert [B, 3, L]), audio [B, Ta, Da], vision [B, Tv, Dv]
  // -> u_t, u_a, u_v [B, hidden_size].
  Representations encode(const ModelInput& input) override;
  // -> prediction [B, 1]; aux_loss: the weighted regularisers of the first original_rows samples.
  ModelOutput fuse(const Representations& reps) override;
  BertModel* bert() override { return bertmodel ? bertmodel->model.get() : nullptr; }

  // What encode() does after BERT: text_states [B, L, Dt] averaged over text_mask [B, L] (1 = token; undefined:
  // every step), audio and vision through their LSTMs over the given lengths (empty: every step).
  Representations encode_states(const Tensor& text_states, const Tensor& text_mask, const Tensor& audio,
                                const Tensor& vision, const std::vector<int64_t>& audio_lengths,
                                const std::vector<int64_t>& vision_lengths);

  FeatureDims dims;
  bool use_bert;
  int64_t hidden;
  float dropout, diff_weight, sim_weight, recon_weight;
  int cmd_moments;
  std::shared_ptr<BertTextEncoder> bertmodel;  // with use_bert only
  std::shared_ptr<LSTM> vrnn1, vrnn2, arnn1, arnn2;
  // Each an nn.Sequential with named children in MMSA ("project_t.project_t", "private_a.private_a_3", ...).
  std::shared_ptr<ModuleGroup> project_t, project_v, project_a, private_t, private_v, private_a, shared, recon_t,
      recon_v, recon_a, sp_discriminator, fusion;
  std::shared_ptr<Linear> project_t_linear, project_v_linear, project_a_linear, private_t_linear,
      private_v_linear, private_a_linear, shared_linear, recon_t_linear, recon_v_linear, recon_a_linear,
      fusion_layer_1, fusion_layer_3;
  std::shared_ptr<LayerNorm> project_t_norm, project_v_norm, project_a_norm;
  std::shared_ptr<LayerNorm> tlayer_norm, vlayer_norm, alayer_norm;
  std::shared_ptr<ModuleGroup> transformer_encoder;  // "transformer_encoder.layers.0.*"
  std::shared_ptr<TransformerEncoderLayer> fusion_transformer;

 private:
  // BiLSTM -> LayerNorm -> BiLSTM; the final states [h1 fwd, h2 fwd, h1 bwd, h2 bwd] -> [B, 4 D].
  Tensor utterance(LSTM& rnn1, LayerNorm& norm, LSTM& rnn2, const Tensor& x, const std::vector<int64_t>& lengths);
};

}  // namespace msmix
