#include "models/almt.h"

#include <fmt/format.h>

#include "engine/error.h"
#include "ops/ops.h"

namespace msmix {

namespace {

// What MMSA fixes for ALMT on every dataset (config_regression.json's almt commonParams and the ALMT trainer):
// unaligned, unnormalised inputs; widths d = 128 everywhere, 8 learned tokens, one embedding layer of 8 heads
// per modality, 3 hyper-modality layers; AdamW over every parameter (lr 1e-4, weight decay 1e-4), batch 64,
// MSE loss, no clipping; the learning rate warms up over 20 epochs (epoch 1 at 0) and then follows a cosine
// of period 2 x 180 epochs, set at each epoch's start; early stop after 32 epochs without a better validation
// loss. use_bert is false here (see almt.h); bert-base-uncased's sizes come along for use_bert=true.
Config almt_common() {
  Config c = bert_base_defaults();
  c.update({{"need_normalized", false},
          {"need_data_aligned", false},
          {"use_bert", false},
          {"dst_feature_dims", 128},
          {"dst_feature_hidden_dims", 128},
          {"dst_embedding_length", 8},
          {"embedding_depth", {1, 1, 1}},
          {"embedding_heads", {8, 8, 8}},
          {"l_encoder_heads", 8},
          {"AHL_depth", 3},
          {"h_hyper_layer_heads", 8},
          {"fusion_hidden_d", 128},
          {"fusion_heads", 8},
          {"loss", "mse"},
          {"optimizer", "adamw"},
          {"learning_rate", 1e-4},
          {"weight_decay", 1e-4},
          {"batch_size", 64},
          {"grad_clip", -1.0},
          {"update_epochs", 1},
          {"scheduler", "warmup_cosine_epochs"},
          {"warmup_epochs", 20},
          {"cosine_epochs", 180},
          {"early_stop", 32},
          {"key_eval", "Loss"},
          {"max_epochs", 200}});
  return c;
}

}  // namespace

Config almt_defaults(const std::string& dataset) {
  Config c = almt_common();
  // feature_length: the longest sequence per modality (text, audio, vision) the positional tables cover.
  if (dataset == "mosi") {
    c.update({{"feature_length", {50, 375, 500}}, {"fusion_layer_depth", 2}});
  } else if (dataset == "mosi-utterance") {  // one step per modality (shared/data/mosi-utterance)
    c.update({{"feature_length", {1, 1, 1}}, {"fusion_layer_depth", 2}, {"feature_dims", {100, 73, 100}}});
  } else if (dataset == "mosei") {
    c.update({{"feature_length", {50, 500, 500}}, {"fusion_layer_depth", 4}});
  } else if (dataset == "sims") {
    c.update({{"feature_length", {39, 400, 55}}, {"fusion_layer_depth", 4}});
  } else {
    throw Error(fmt::format("almt_defaults: unknown dataset '{}'; known: mosi, mosei, sims, mosi-utterance", dataset));
  }
  return c;
}

ALMT::ALMT(const FeatureDims& dims_, const Config& config)
    : dims(dims_), use_bert(config_bool_or(config, "use_bert", false)) {
  const std::vector<int64_t> lengths = config_ints(config, "feature_length", 3);
  length_l = lengths[0], length_a = lengths[1], length_v = lengths[2];
  d = config_int(config, "dst_feature_dims");
  tokens = config_int(config, "dst_embedding_length");
  ahl_depth = config_int(config, "AHL_depth");
  const int64_t hidden = config_int(config, "dst_feature_hidden_dims");
  const std::vector<int64_t> depth = config_ints(config, "embedding_depth", 3);
  const std::vector<int64_t> heads = config_ints(config, "embedding_heads", 3);
  const int64_t hyper_heads = config_int(config, "h_hyper_layer_heads");
  MSMIX_CHECK(dims.text > 0 && dims.audio > 0 && dims.vision > 0,
              "ALMT: feature dims (text, audio, vision) must be positive, got ({}, {}, {})", dims.text, dims.audio,
              dims.vision);
  MSMIX_CHECK(length_l > 0 && length_a > 0 && length_v > 0,
              "ALMT: feature_length (text, audio, vision) must be positive, got [{}, {}, {}]", length_l, length_a,
              length_v);
  MSMIX_CHECK(d > 0 && tokens > 0 && hidden > 0, "ALMT: dst_feature_dims {}, dst_embedding_length {} and "
              "dst_feature_hidden_dims {} must be positive", d, tokens, hidden);
  MSMIX_CHECK(ahl_depth >= 1, "ALMT: AHL_depth must be >= 1 (the language encoder has AHL_depth - 1 layers), got {}",
              ahl_depth);
  MSMIX_CHECK(hyper_heads > 0 && d % hyper_heads == 0,
              "ALMT: h_hyper_layer_heads {} must divide dst_feature_dims {} (each head is d / heads wide)", hyper_heads,
              d);

  // MMSA's registration order (= its state_dict and parameters() order).
  if (use_bert) {
    const BertSizes bert_size = bert_sizes(config);
    MSMIX_CHECK(dims.text == bert_size.hidden,
                "ALMT: with use_bert the text width is BERT's hidden width {}, but feature_dims gives {}",
                bert_size.hidden, dims.text);
    bertmodel = register_module("bertmodel", std::make_shared<BertTextEncoder>(bert_size));
  }
  h_hyper = register_parameter("h_hyper", Tensor::ones({1, tokens, d}));
  auto embedding = [&](const char* name, int64_t width, int64_t length, int m, std::shared_ptr<Linear>& project,
                       std::shared_ptr<AlmtTransformer>& transformer) {
    auto seq = register_module(name, std::make_shared<Sequential>());
    project = seq->set(0, std::make_shared<Linear>(width, d));
    transformer = seq->set(1, std::make_shared<AlmtTransformer>(length, tokens, d, depth[size_t(m)], heads[size_t(m)],
                                                                hidden));
    return seq;
  };
  embedding_l = embedding("embedding_l", dims.text, length_l, 0, project_l, embed_l);
  embedding_a = embedding("embedding_a", dims.audio, length_a, 1, project_a, embed_a);
  embedding_v = embedding("embedding_v", dims.vision, length_v, 2, project_v, embed_v);
  l_encoder = register_module("l_encoder",
                              std::make_shared<AlmtTransformer>(tokens, 0, d, ahl_depth - 1,
                                                                config_int(config, "l_encoder_heads"), d));
  h_hyper_layer =
      register_module("h_hyper_layer", std::make_shared<AlmtHyperEncoder>(d, ahl_depth, hyper_heads, d / hyper_heads));
  fusion_layer =
      register_module("fusion_layer", std::make_shared<AlmtCrossTransformer>(
                                          tokens, tokens, d, config_int(config, "fusion_layer_depth"),
                                          config_int(config, "fusion_heads"), config_int(config, "fusion_hidden_d")));
  regression_head = register_module("regression_head", std::make_shared<Linear>(d, 1));
}

Representations ALMT::encode(const ModelInput& input) {
  if (use_bert) {
    MSMIX_CHECK(input.text.defined() && input.text.dim() == 3 && input.text.size(1) == 3,
                "ALMT (use_bert): expected text_bert [B, 3, L] (token ids, mask, segments), got {}",
                input.text.defined() ? describe(input.text) : "undefined (the data has no text_bert)");
    MSMIX_CHECK(input.text.size(2) <= length_l,
                "ALMT (use_bert): {} text tokens ({}), more than feature_length allows for text ({})",
                input.text.size(2), describe(input.text), length_l);
    ModelInput features = input;
    features.text = bertmodel->forward(input.text);  // [B, L, bert_hidden]
    return encode_features(features);
  }
  return encode_features(input);
}

Representations ALMT::encode_features(const ModelInput& input) {
  struct Check {
    const Tensor* x;
    const char* modality;
    int64_t width, length;
  };
  for (const Check& c :
       {Check{&input.text, "text", dims.text, length_l}, Check{&input.audio, "audio", dims.audio, length_a},
        Check{&input.vision, "vision", dims.vision, length_v}}) {
    MSMIX_CHECK(c.x->defined() && c.x->dim() == 3 && c.x->size(2) == c.width && c.x->size(1) > 0,
                "ALMT: expected {} [B, T > 0, {}], got {}", c.modality, c.width,
                c.x->defined() ? describe(*c.x) : "undefined");
    MSMIX_CHECK(c.x->size(0) == input.text.size(0), "ALMT: batch sizes differ: text {}, {} {}", describe(input.text),
                c.modality, describe(*c.x));
    MSMIX_CHECK(c.x->size(1) <= c.length,
                "ALMT: the {} sequence has {} steps ({}), more than feature_length allows for it ({}); set "
                "feature_length to the file's lengths",
                c.modality, c.x->size(1), describe(*c.x), c.length);
  }
  // Linear to d, then the embedding transformer over [tokens; x]; only the learned tokens' outputs are kept.
  Representations r;
  r.t = embed_l->forward(project_l->forward(input.text), tokens);
  r.a = embed_a->forward(project_a->forward(input.audio), tokens);
  r.v = embed_v->forward(project_v->forward(input.vision), tokens);
  return r;
}

ModelOutput ALMT::fuse(const Representations& z) {
  const int64_t B = z.t.defined() && z.t.dim() == 3 ? z.t.size(0) : -1;
  for (const auto& [x, m] : {std::pair{&z.t, "t"}, std::pair{&z.a, "a"}, std::pair{&z.v, "v"}})
    MSMIX_CHECK(x->defined() && x->shape() == Shape({B, tokens, d}),
                "ALMT: representation {} must be [B, {}, {}] with the batch of t, got {} (t: {})", m, tokens, d,
                x->defined() ? describe(*x) : "undefined", z.t.defined() ? describe(z.t) : "undefined");
  std::vector<Tensor> text_hidden = l_encoder->forward_hidden(z.t);  // [z0, z1, ..., z_{AHL_depth - 1}]
  Tensor hyper = h_hyper_layer->forward(text_hidden, z.a, z.v, expand(h_hyper, {B, tokens, d}));
  Tensor fused = fusion_layer->forward(hyper, text_hidden.back());  // [B, tokens + 1, d]
  return {regression_head->forward(reshape(slice(fused, 1, 0, 1), {B, d})), Tensor()};
}

}  // namespace msmix
