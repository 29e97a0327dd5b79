#include "models/glomo.h"

#include <fmt/format.h>

#include <cmath>

#include "engine/error.h"
#include "ops/ops.h"

namespace msmix {

namespace {

// sum_j w[:, j] x_j: w [B, 3], each x_j [B, d] -> [B, d].
Tensor weighted_sum(const Tensor& w, const Tensor& x1, const Tensor& x2, const Tensor& x3) {
  Tensor stacked = concat({unsqueeze(x1, 1), unsqueeze(x2, 1), unsqueeze(x3, 1)}, 1);  // [B, 3, d]
  return reshape(matmul(unsqueeze(w, 1), stacked), {x1.size(0), x1.size(1)});
}

// The 6-token sequence's token j: [B, d].
Tensor token(const Tensor& z, int64_t j) { return reshape(slice(z, 1, j, j + 1), {z.size(0), z.size(2)}); }

}  // namespace

Config glomo_defaults(const std::string& dataset) {
  Config c = bert_base_defaults();
  c.update({{"need_normalized", false},
            {"need_data_aligned", true},
            {"use_bert", false},
            {"local_slots", 3},
            {"num_experts", 3},
            {"top_k", 2},
            {"num_heads", 16},
            {"attn_dropout", 0.5},
            {"relu_dropout", 0.3},
            {"res_dropout", 0.3},
            {"embed_dropout", 0.2},
            {"moe_loss_weight", 0.01},
            {"fusion_layers", 2},
            {"fusion_ff", 2048},
            {"fusion_dropout", 0.1},
            {"gate_dropout", 0.3},
            {"loss", "l1"},
            {"optimizer", "adamw"},
            {"weight_decay", 1e-4},
            {"scheduler", "multistep"},
            {"milestones", {80, 100}},
            {"scheduler_factor", 0.1},
            {"grad_clip", -1.0},
            {"update_epochs", 1},
            {"key_eval", "Loss"}});
  // Selection on the validation loss over a fixed number of epochs: early_stop = max_epochs never fires.
  if (dataset == "mosi" || dataset == "mosi-utterance" || dataset == "sims") {  // SIMS: no settings of its own
    c.update({{"d_model", 48}, {"encoder_layers", 4}, {"learning_rate", 4e-5}, {"batch_size", 240},
              {"max_epochs", 70}, {"early_stop", 70}});
  } else if (dataset == "mosei") {
    c.update({{"d_model", 192}, {"encoder_layers", 3}, {"learning_rate", 1e-5}, {"batch_size", 64},
              {"max_epochs", 100}, {"early_stop", 100}});
  } else {
    throw Error(fmt::format("glomo_defaults: unknown dataset '{}'; known: mosi, mosei, sims, mosi-utterance", dataset));
  }
  return c;
}

Tensor adaptive_max_pool_time(const Tensor& x, int64_t slots) {
  MSMIX_CHECK(x.defined() && x.dim() == 3 && x.size(1) > 0 && slots > 0,
              "adaptive_max_pool_time: expected x [B, L > 0, C] and slots > 0, got {} and {}",
              x.defined() ? describe(x) : "undefined", slots);
  const int64_t L = x.size(1);
  std::vector<Tensor> pooled;
  for (int64_t i = 0; i < slots; ++i) {
    const int64_t start = i * L / slots, end = ((i + 1) * L + slots - 1) / slots;
    pooled.push_back(unsqueeze(max(slice(x, 1, start, end), {1}), 2));  // [B, C, 1]
  }
  return concat(pooled, 2);  // [B, C, slots]
}

GlomoAttentionPool::GlomoAttentionPool(int64_t d_, float dropout_) : d(d_), dropout(dropout_) {
  fc1 = register_module("fc1", std::make_shared<Linear>(3 * d, d));
  fc2 = register_module("fc2", std::make_shared<Linear>(d, 3));
}

GlomoAttentionPool::Output GlomoAttentionPool::forward(const Tensor& x1, const Tensor& x2, const Tensor& x3) {
  Tensor s = fc2->forward(relu(msmix::dropout(fc1->forward(concat({x1, x2, x3}, 1)), dropout, is_training())));
  Output o;
  o.weights = softmax(div(s, std::sqrt(float(d))));  // [B, 3]
  o.fused = weighted_sum(o.weights, x1, x2, x3);
  return o;
}

GLoMo::GLoMo(const FeatureDims& dims_, const Config& config)
    : dims(dims_), use_bert(config_bool_or(config, "use_bert", false)) {
  d = config_int(config, "d_model");
  slots = config_int(config, "local_slots");
  const int64_t heads = config_int(config, "num_heads"), layers = config_int(config, "encoder_layers");
  const int64_t experts = config_int(config, "num_experts"), top_k = config_int(config, "top_k");
  const float moe_weight = config_float(config, "moe_loss_weight");
  MSMIX_CHECK(dims.text > 0 && dims.audio > 0 && dims.vision > 0,
              "GLoMo: feature dims (text, audio, vision) must be positive, got ({}, {}, {})", dims.text, dims.audio,
              dims.vision);
  MSMIX_CHECK(d >= 4 && heads > 0 && d % heads == 0,
              "GLoMo: d_model {} must be at least 4 and a multiple of num_heads {}", d, heads);
  MSMIX_CHECK(slots > 0 && layers >= 0, "GLoMo: local_slots {} must be positive and encoder_layers {} >= 0", slots,
              layers);

  if (use_bert) {
    BertSizes bert_size = bert_sizes(config);
    bert_size.pooler = false;  // GLoMo's BERT has none
    MSMIX_CHECK(dims.text == bert_size.hidden,
                "GLoMo: with use_bert the text width is BERT's hidden width {}, but feature_dims gives {}",
                bert_size.hidden, dims.text);
    MSMIX_CHECK(bert_size.layers >= 2, "GLoMo: use_bert reads BERT's last two layers; bert_layers is {}",
                bert_size.layers);
    bert_model = register_module("bert", std::make_shared<BertTextEncoder>(bert_size));
  }
  text_global = register_module("text_global", std::make_shared<Linear>(dims.text, d));
  text_conv = register_module("text_conv", std::make_shared<Conv1d>(dims.text, d, 3, 1, false));
  audio_conv = register_module("audio_conv", std::make_shared<Conv1d>(dims.audio, d, 3, 1, false));
  vision_conv = register_module("vision_conv", std::make_shared<Conv1d>(dims.vision, d, 3, 1, false));
  auto encoder = [&](const char* name) {
    return register_module(name, std::make_shared<MultTransformerEncoder>(
                                     d, heads, layers, config_float(config, "attn_dropout"),
                                     config_float(config, "relu_dropout"), config_float(config, "res_dropout"),
                                     config_float(config, "embed_dropout"), /*attn_mask=*/false,
                                     /*position_embedding=*/true));
  };
  audio_encoder = encoder("audio_encoder");
  vision_encoder = encoder("vision_encoder");
  moe_t = register_module("moe_t", std::make_shared<GlomoMoE>(slots * d, d, experts, top_k, moe_weight));
  moe_a = register_module("moe_a", std::make_shared<GlomoMoE>(slots * d, d, experts, top_k, moe_weight));
  moe_v = register_module("moe_v", std::make_shared<GlomoMoE>(slots * d, d, experts, top_k, moe_weight));
  fusion = register_module("fusion", std::make_shared<ModuleList<TransformerEncoderLayer>>());
  for (int64_t i = 0; i < config_int(config, "fusion_layers"); ++i)
    fusion->append(std::make_shared<TransformerEncoderLayer>(d, heads, config_int(config, "fusion_ff"),
                                                             config_float(config, "fusion_dropout")));
  const float gate_dropout = config_float(config, "gate_dropout");
  att_global = register_module("att_global", std::make_shared<GlomoAttentionPool>(d, gate_dropout));
  att_local = register_module("att_local", std::make_shared<GlomoAttentionPool>(d, gate_dropout));
  global_local = register_module("global_local", std::make_shared<Linear>(2 * d, d));
  modality_t = register_module("modality_t", std::make_shared<Linear>(2 * d, d));
  modality_a = register_module("modality_a", std::make_shared<Linear>(2 * d, d));
  modality_v = register_module("modality_v", std::make_shared<Linear>(2 * d, d));
  head = register_module("head", std::make_shared<Linear>(2 * d, 1));
}

bool GLoMo::decays(const std::string& name) const {
  return name.find("bias") == std::string::npos && name.find("LayerNorm.weight") == std::string::npos;
}

Representations GLoMo::encode(const ModelInput& input) {
  const int64_t B = input.audio.defined() && input.audio.dim() == 3 ? input.audio.size(0) : -1;
  struct Check {
    const Tensor* x;
    const char* modality;
    int64_t width;
  };
  for (const Check& c : {Check{&input.audio, "audio", dims.audio}, Check{&input.vision, "vision", dims.vision}})
    MSMIX_CHECK(c.x->defined() && c.x->dim() == 3 && c.x->size(0) == B && c.x->size(1) > 0 && c.x->size(2) == c.width,
                "GLoMo: expected {} [B, L > 0, {}] with the batch of audio, got {}", c.modality, c.width,
                c.x->defined() ? describe(*c.x) : "undefined");
  // Text: the last hidden state H12 [B, L, Dt] and, with BERT, the one before it.
  std::vector<Tensor> text_states;
  if (use_bert) {
    MSMIX_CHECK(input.text.defined() && input.text.dim() == 3 && input.text.size(0) == B && input.text.size(1) == 3,
                "GLoMo (use_bert): expected text_bert [B, 3, L] with the batch of audio, got {}",
                input.text.defined() ? describe(input.text) : "undefined (the data has no text_bert)");
    std::vector<Tensor> states = bert_model->model->forward_states(input.text);
    text_states = {states.back(), states[states.size() - 2]};
  } else {
    MSMIX_CHECK(input.text.defined() && input.text.dim() == 3 && input.text.size(0) == B && input.text.size(1) > 0 &&
                    input.text.size(2) == dims.text,
                "GLoMo: expected text [B, L > 0, {}] with the batch of audio, got {}", dims.text,
                input.text.defined() ? describe(input.text) : "undefined");
    text_states = {input.text};
  }
  Representations r;
  const Tensor& h12 = text_states[0];
  r.t = text_global->forward(reshape(slice(h12, 1, 0, 1), {B, dims.text}));  // the [CLS] state
  Tensor text_local =
      adaptive_max_pool_time(text_conv->forward_time_major(concat(text_states, 1)), slots);  // [B, d, slots]

  auto encode_modality = [&](const Conv1d& conv, MultTransformerEncoder& enc, const Tensor& x, Tensor& global) {
    Tensor h = enc.forward(conv.forward_time_major(x));  // [B, L, d]
    global = max(h, {1});                                // [B, d]
    return adaptive_max_pool_time(h, slots);             // [B, d, slots]
  };
  Tensor audio_local = encode_modality(*audio_conv, *audio_encoder, input.audio, r.a);
  Tensor vision_local = encode_modality(*vision_conv, *vision_encoder, input.vision, r.v);

  GlomoMoE::Output lt = moe_t->forward(reshape(text_local, {B, slots * d}));
  GlomoMoE::Output la = moe_a->forward(reshape(audio_local, {B, slots * d}));
  GlomoMoE::Output lv = moe_v->forward(reshape(vision_local, {B, slots * d}));
  r.t_fine = lt.out, r.a_fine = la.out, r.v_fine = lv.out;
  r.aux_loss = add(add(lt.loss, la.loss), lv.loss);
  return r;
}

ModelOutput GLoMo::fuse(const Representations& z) {
  const int64_t B = z.t.defined() && z.t.dim() == 2 ? z.t.size(0) : -1;
  for (const auto& [x, m] : {std::pair{&z.t, "t"}, std::pair{&z.a, "a"}, std::pair{&z.v, "v"},
                             std::pair{&z.t_fine, "t_fine"}, std::pair{&z.a_fine, "a_fine"},
                             std::pair{&z.v_fine, "v_fine"}})
    MSMIX_CHECK(x->defined() && x->shape() == Shape({B, d}),
                "GLoMo: representation {} must be [B, {}] with the batch of t, got {} (t: {})", m, d,
                x->defined() ? describe(*x) : "undefined", z.t.defined() ? describe(z.t) : "undefined");
  // [g_t, l_t, g_a, l_a, g_v, l_v] as a 6-token sequence through the fusion encoder.
  std::vector<Tensor> tokens;
  for (const Tensor* x : {&z.t, &z.t_fine, &z.a, &z.a_fine, &z.v, &z.v_fine}) tokens.push_back(unsqueeze(*x, 1));
  Tensor seq = concat(tokens, 1);  // [B, 6, d]
  for (const auto& layer : fusion->items) seq = layer->forward(seq);
  GlomoAttentionPool::Output g = att_global->forward(token(seq, 0), token(seq, 2), token(seq, 4));
  GlomoAttentionPool::Output l = att_local->forward(token(seq, 1), token(seq, 3), token(seq, 5));
  Tensor a = global_local->forward(concat({g.fused, l.fused}, 1));
  Tensor m_t = modality_t->forward(concat({token(seq, 0), token(seq, 1)}, 1));
  Tensor m_a = modality_a->forward(concat({token(seq, 2), token(seq, 3)}, 1));
  Tensor m_v = modality_v->forward(concat({token(seq, 4), token(seq, 5)}, 1));
  Tensor c = weighted_sum(g.weights, m_t, m_a, m_v);  // sum_j w_g,j m_j
  return {head->forward(concat({a, c}, 1)), z.aux_loss};
}

}  // namespace msmix
