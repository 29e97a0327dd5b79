#include "models/bert.h"

#include <cmath>

#include "engine/checkpoint.h"
#include "engine/error.h"
#include "models/attention.h"
#include "models/checkpoint_io.h"
#include "models/init.h"
#include "ops/ops.h"

namespace msmix {

namespace {

// Hugging Face's BERT init (_init_weights): N(0, 0.02) weights, zero biases; LayerNorms 1 / 0 as built.
std::shared_ptr<Linear> bert_linear(int64_t in, int64_t out) {
  auto l = std::make_shared<Linear>(in, out);
  init::normal_(l->weight, 0, 0.02f);
  init::zeros_(l->bias);
  return l;
}

std::shared_ptr<Embedding> bert_embedding(int64_t rows, int64_t width, int64_t padding_idx = -1) {
  auto e = std::make_shared<Embedding>(rows, width, padding_idx);
  init::normal_(e->weight, 0, 0.02f);
  if (padding_idx >= 0) std::fill_n(e->weight.data() + padding_idx * width, width, 0.0f);
  return e;
}

}  // namespace

Config bert_base_defaults() {
  const BertSizes s;
  return {{"bert_vocab", s.vocab},
          {"bert_hidden", s.hidden},
          {"bert_layers", s.layers},
          {"bert_heads", s.heads},
          {"bert_intermediate", s.intermediate},
          {"bert_max_positions", s.max_positions},
          {"bert_type_vocab", s.type_vocab},
          {"bert_dropout", 0.1},
          {"bert_weights", ""}};
}

BertSizes bert_sizes(const Config& config) {
  BertSizes s;
  s.vocab = config_int(config, "bert_vocab");
  s.hidden = config_int(config, "bert_hidden");
  s.layers = config_int(config, "bert_layers");
  s.heads = config_int(config, "bert_heads");
  s.intermediate = config_int(config, "bert_intermediate");
  s.max_positions = config_int(config, "bert_max_positions");
  s.type_vocab = config_int(config, "bert_type_vocab");
  s.dropout = config_float(config, "bert_dropout");
  return s;
}

BertEmbeddings::BertEmbeddings(const BertSizes& s) : dropout(s.dropout) {
  word_embeddings = register_module("word_embeddings", bert_embedding(s.vocab, s.hidden, /*padding_idx=*/0));
  position_embeddings = register_module("position_embeddings", bert_embedding(s.max_positions, s.hidden));
  token_type_embeddings = register_module("token_type_embeddings", bert_embedding(s.type_vocab, s.hidden));
  layer_norm = register_module("LayerNorm", std::make_shared<LayerNorm>(s.hidden, s.layer_norm_eps));
}

Tensor BertEmbeddings::forward(const Tensor& ids, const Tensor& segments) {
  ProfileRange range(range_name());
  const int64_t L = ids.size(1);
  Tensor positions = slice(position_embeddings->weight, 0, 0, L);  // [L, H], broadcast over the batch
  Tensor x = add(add(word_embeddings->forward(ids), positions), token_type_embeddings->forward(segments));
  return msmix::dropout(layer_norm->forward(x), dropout, is_training());
}

BertLayer::BertLayer(const BertSizes& s) : heads(s.heads), dropout(s.dropout) {
  // Hugging Face's tree: attention.self.{query,key,value}, attention.output.{dense,LayerNorm},
  // intermediate.dense, output.{dense,LayerNorm}.
  auto attention = register_module("attention", std::make_shared<ModuleGroup>("BertAttention"));
  auto self = attention->add("self", std::make_shared<ModuleGroup>("BertSelfAttention"));
  query = self->add("query", bert_linear(s.hidden, s.hidden));
  key = self->add("key", bert_linear(s.hidden, s.hidden));
  value = self->add("value", bert_linear(s.hidden, s.hidden));
  auto attention_output = attention->add("output", std::make_shared<ModuleGroup>("BertSelfOutput"));
  attention_dense = attention_output->add("dense", bert_linear(s.hidden, s.hidden));
  attention_norm = attention_output->add("LayerNorm", std::make_shared<LayerNorm>(s.hidden, s.layer_norm_eps));
  auto intermediate = register_module("intermediate", std::make_shared<ModuleGroup>("BertIntermediate"));
  intermediate_dense = intermediate->add("dense", bert_linear(s.hidden, s.intermediate));
  auto output = register_module("output", std::make_shared<ModuleGroup>("BertOutput"));
  output_dense = output->add("dense", bert_linear(s.intermediate, s.hidden));
  output_norm = output->add("LayerNorm", std::make_shared<LayerNorm>(s.hidden, s.layer_norm_eps));
}

Tensor BertLayer::forward(const Tensor& x, const Tensor& key_padding_mask) {
  ProfileRange range(range_name());
  const bool training = is_training();
  const int64_t width = x.size(2);
  Tensor context = attention_heads(query->forward(x), key->forward(x), value->forward(x), heads,
                                   1.0f / std::sqrt(float(width / heads)), Tensor(), key_padding_mask, dropout,
                                   training)
                       .out;
  Tensor a = attention_norm->forward(add(msmix::dropout(attention_dense->forward(context), dropout, training), x));
  Tensor h = output_dense->forward(gelu(intermediate_dense->forward(a)));
  return output_norm->forward(add(msmix::dropout(h, dropout, training), a));
}

BertModel::BertModel(const BertSizes& s) : sizes(s) {
  MSMIX_CHECK(s.vocab > 0 && s.hidden > 0 && s.layers >= 0 && s.heads > 0 && s.hidden % s.heads == 0 &&
                  s.intermediate > 0 && s.max_positions > 0 && s.type_vocab > 0,
              "BERT: sizes must be positive with the hidden width a multiple of the heads, got vocab {}, hidden {}, "
              "layers {}, heads {}, intermediate {}, max positions {}, token types {}",
              s.vocab, s.hidden, s.layers, s.heads, s.intermediate, s.max_positions, s.type_vocab);
  MSMIX_CHECK(s.dropout >= 0 && s.dropout < 1, "BERT: bert_dropout must be in [0, 1), got {}", s.dropout);
  embeddings = register_module("embeddings", std::make_shared<BertEmbeddings>(s));
  auto encoder = register_module("encoder", std::make_shared<ModuleGroup>("BertEncoder"));
  layers = encoder->add("layer", std::make_shared<ModuleList<BertLayer>>());
  for (int64_t i = 0; i < s.layers; ++i) layers->append(std::make_shared<BertLayer>(s));
  if (s.pooler)
    pooler = register_module("pooler", std::make_shared<ModuleGroup>("BertPooler"))
                 ->add("dense", bert_linear(s.hidden, s.hidden));
}

std::vector<Tensor> BertModel::forward_states(const Tensor& text_bert) {
  ProfileRange range(range_name());
  MSMIX_CHECK(text_bert.defined() && text_bert.dim() == 3 && text_bert.size(1) == 3 && text_bert.size(2) > 0,
              "BERT: expected text_bert [B, 3, L] (token ids, attention mask, segment ids), got {}",
              text_bert.defined() ? describe(text_bert) : "undefined (the data has no text_bert)");
  const int64_t B = text_bert.size(0), L = text_bert.size(2);
  MSMIX_CHECK(L <= sizes.max_positions, "BERT: {} tokens per sample, more than its {} positions", L,
              sizes.max_positions);
  Tensor ids = reshape(slice(text_bert, 1, 0, 1), {B, L});
  Tensor mask = reshape(slice(text_bert, 1, 1, 2), {B, L});
  Tensor segments = reshape(slice(text_bert, 1, 2, 3), {B, L});
  Tensor padding = rsub(1.0f, mask).detach();  // nonzero where the mask is 0
  std::vector<Tensor> states = {embeddings->forward(ids, segments)};
  for (const auto& layer : layers->items) states.push_back(layer->forward(states.back(), padding));
  return states;
}

BertTextEncoder::BertTextEncoder(const BertSizes& sizes) {
  model = register_module("model", std::make_shared<BertModel>(sizes));
}

void load_bert_weights(BertModel& bert, const std::string& path) {
  Checkpoint file = load_safetensors(path);
  TensorDict state;
  auto ends_with = [](const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  for (auto& [original, t] : file.tensors) {
    std::string name = original;
    if (name.rfind("bert.", 0) == 0) name = name.substr(5);
    if (name.rfind("cls.", 0) == 0 || name == "embeddings.position_ids") continue;
    if (ends_with(name, "LayerNorm.gamma")) name = name.substr(0, name.size() - 5) + "weight";
    if (ends_with(name, "LayerNorm.beta")) name = name.substr(0, name.size() - 4) + "bias";
    state[name] = t;
  }
  load_state_into(bert, state, /*strict=*/true, "BERT weights '" + path + "'");
}

}  // namespace msmix
