// BERT's encoder (bert-base-uncased's architecture, as Hugging Face's BertModel and MMSA's BertTextEncoder use
// it), with Hugging Face's state-dict names, for the backbones that fine-tune it on MMSA's text_bert ids:
//   embeddings: word_embeddings [V, H], position_embeddings [P, H], token_type_embeddings [T, H], LayerNorm
//     x = LN(word[ids] + position[0..L) + token_type[segments]), dropout
//   encoder.layer.<i> (post-norm):
//     attention.self.{query, key, value} (H -> H, with bias), heads of H / heads, padded keys masked
//     a = attention.output.LayerNorm(x + dropout(attention.output.dense(context)))
//     y = output.LayerNorm(a + dropout(output.dense(GELU(intermediate.dense(a)))))      (exact erf GELU)
//   pooler.dense (H -> H): registered for the names and counts (MMSA's model has it) but not run: the text
//     encoders read the last hidden states only, so it never gets a grad.
// LayerNorm eps 1e-12; dropouts on the hidden states and the attention probabilities (0.1 for bert-base).
//
// Input: text_bert [B, 3, L] as MMSA stores it (float32 rows: token ids, attention mask 1/0, segment ids).
// Output: the last hidden states [B, L, H]. Padded positions (mask 0) are never attended to; their own
// outputs are computed as BERT does and left to the caller (ALMT reads every position, as MMSA's).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/defaults.h"
#include "models/embedding.h"
#include "models/layer_norm.h"
#include "models/linear.h"
#include "models/module.h"
#include "models/module_list.h"

namespace msmix {

struct BertSizes {
  int64_t vocab = 30522, hidden = 768, layers = 12, heads = 12, intermediate = 3072, max_positions = 512,
          type_vocab = 2;
  float dropout = 0.1f;       // hidden_dropout_prob and attention_probs_dropout_prob
  float layer_norm_eps = 1e-12f;
  bool pooler = true;  // MMSA's BertTextEncoder has one (ALMT's count includes it); GLoMo's BERT has none
};

// bert-base-uncased's sizes as config keys (bert_vocab, bert_hidden, bert_layers, bert_heads,
// bert_intermediate, bert_max_positions, bert_type_vocab, bert_dropout) and bert_weights ("": none given).
Config bert_base_defaults();
// The sizes from those keys.
BertSizes bert_sizes(const Config& config);

class BertEmbeddings : public Module {
 public:
  const char* kind() const override { return "BertEmbeddings"; }
  explicit BertEmbeddings(const BertSizes& sizes);
  Tensor forward(const Tensor& ids, const Tensor& segments);  // [B, L] each -> [B, L, H]

  float dropout;
  std::shared_ptr<Embedding> word_embeddings, position_embeddings, token_type_embeddings;
  std::shared_ptr<LayerNorm> layer_norm;  // "LayerNorm"
};

class BertLayer : public Module {
 public:
  const char* kind() const override { return "BertLayer"; }
  explicit BertLayer(const BertSizes& sizes);
  // x [B, L, H]; key_padding_mask [B, L], nonzero = padding (or undefined) -> [B, L, H]
  Tensor forward(const Tensor& x, const Tensor& key_padding_mask);

  int64_t heads;
  float dropout;
  std::shared_ptr<Linear> query, key, value, attention_dense, intermediate_dense, output_dense;
  std::shared_ptr<LayerNorm> attention_norm, output_norm;
};

class BertModel : public Module {
 public:
  const char* kind() const override { return "BertModel"; }
  explicit BertModel(const BertSizes& sizes);
  // text_bert [B, 3, L] (ids, mask, segments; L <= max_positions) -> last hidden states [B, L, H]
  Tensor forward(const Tensor& text_bert) { return forward_states(text_bert).back(); }
  // Every hidden state: [embeddings' output, after layer 1, ..., after layer `layers`], each [B, L, H].
  std::vector<Tensor> forward_states(const Tensor& text_bert);

  BertSizes sizes;
  std::shared_ptr<BertEmbeddings> embeddings;
  std::shared_ptr<ModuleList<BertLayer>> layers;  // encoder.layer.<i>
  std::shared_ptr<Linear> pooler;                 // pooler.dense, when sizes.pooler
};

// MMSA's BertTextEncoder: its BertModel under "model" (so a backbone's names read bertmodel.model.*), run on
// text_bert and returning the last hidden states.
class BertTextEncoder : public Module {
 public:
  const char* kind() const override { return "BertTextEncoder"; }
  explicit BertTextEncoder(const BertSizes& sizes);
  Tensor forward(const Tensor& text_bert) { return model->forward(text_bert); }  // [B, 3, L] -> [B, L, H]

  std::shared_ptr<BertModel> model;
};

// Copies a pretrained BERT into `bert` from a safetensors file (scripts/pth_to_safetensors.py converts a
// PyTorch .bin). Accepted as Hugging Face and Google's converted checkpoints name things: a "bert." prefix is
// removed, pre-training heads ("cls.*") and the position_ids buffer are skipped, LayerNorm "gamma" / "beta" read
// as weight / bias. Then strict: every BERT tensor must be there with its shape; the error lists what is not.
void load_bert_weights(BertModel& bert, const std::string& path);

}  // namespace msmix
