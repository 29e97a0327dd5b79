#include "models/misa.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "engine/cuda_runtime.h"
#include "engine/error.h"
#include "models/misa_losses.h"
#include "ops/ops.h"

namespace msmix {

namespace {

// What MMSA fixes for MISA on every dataset (config_regression.json's misa commonParams and the MISA trainer):
// unaligned, unnormalised inputs; hidden 128; the CMD similarity loss with 5 moments; Adam over every parameter
// with no weight decay (the trainer gives Adam none, whatever the entry says); gradients accumulated over 2
// batches and clipped by value after each backward; MSE loss (the validation loss too); early stop 8. The
// fusion transformer layer is PyTorch's default TransformerEncoderLayer(128, 2 heads). use_bert is false here
// (see misa.h); bert-base-uncased's sizes come along for use_bert=true.
Config misa_common() {
  Config c = bert_base_defaults();
  c.update({{"need_normalized", false},
            {"need_data_aligned", false},
            {"use_bert", false},
            {"hidden_size", 128},
            {"transformer_heads", 2},
            {"transformer_ff", 2048},
            {"transformer_dropout", 0.1},
            {"use_cmd_sim", true},
            {"cmd_moments", 5},
            {"loss", "mse"},
            {"optimizer", "adam"},
            {"learning_rate", 1e-4},
            {"weight_decay", 0.0},
            {"update_epochs", 2},
            {"early_stop", 8},
            {"key_eval", "Loss"},
            {"max_epochs", 200}});
  return c;
}

}  // namespace

Config misa_defaults(const std::string& dataset) {
  Config c = misa_common();
  if (dataset == "mosi" || dataset == "mosi-utterance") {
    c.update({{"batch_size", 16}, {"dropout", 0.2}, {"diff_weight", 0.1}, {"sim_weight", 0.3},
              {"recon_weight", 1.0}, {"grad_clip", 0.8}});
    if (dataset == "mosi-utterance") c["feature_dims"] = {100, 73, 100};
  } else if (dataset == "mosei") {
    c.update({{"batch_size", 64}, {"dropout", 0.5}, {"diff_weight", 0.3}, {"sim_weight", 0.8},
              {"recon_weight", 1.0}, {"grad_clip", 0.8}});
  } else if (dataset == "sims") {
    c.update({{"batch_size", 64}, {"dropout", 0.0}, {"diff_weight", 0.3}, {"sim_weight", 1.0},
              {"recon_weight", 0.8}, {"grad_clip", 1.0}});
  } else {
    throw Error(fmt::format("misa_defaults: unknown dataset '{}'; known: mosi, mosei, sims, mosi-utterance", dataset));
  }
  return c;
}

MISA::MISA(const FeatureDims& dims_, const Config& config)
    : dims(dims_), use_bert(config_bool_or(config, "use_bert", false)) {
  hidden = config_int(config, "hidden_size");
  dropout = config_float(config, "dropout");
  diff_weight = config_float(config, "diff_weight");
  sim_weight = config_float(config, "sim_weight");
  recon_weight = config_float(config, "recon_weight");
  cmd_moments = int(config_int(config, "cmd_moments"));
  const int64_t heads = config_int(config, "transformer_heads");
  MSMIX_CHECK(dims.text > 0 && dims.audio > 0 && dims.vision > 0,
              "MISA: feature dims (text, audio, vision) must be positive, got ({}, {}, {})", dims.text, dims.audio,
              dims.vision);
  MSMIX_CHECK(hidden > 0 && heads > 0 && hidden % heads == 0,
              "MISA: hidden_size {} must be positive and a multiple of transformer_heads {}", hidden, heads);
  MSMIX_CHECK(cmd_moments >= 1, "MISA: cmd_moments must be >= 1, got {}", cmd_moments);
  // MMSA's other similarity loss (a domain discriminator behind gradient reversal) does not run in MMSA v2.2.1:
  // its trainer calls a domain_loss_criterion it never defines. Without a reference to match, it is not built.
  MSMIX_CHECK(config_bool_or(config, "use_cmd_sim", true),
              "MISA: use_cmd_sim=false (the adversarial similarity loss) is not built: MMSA v2.2.1's trainer calls a "
              "domain_loss_criterion it never defines, so the path has no reference to match; MMSA's MISA uses CMD "
              "(use_cmd_sim=true) on every dataset");

  // MMSA's registration order (= its state_dict and parameters() order).
  if (use_bert) {
    const BertSizes bert_size = bert_sizes(config);
    MSMIX_CHECK(dims.text == bert_size.hidden,
                "MISA: with use_bert the text width is BERT's hidden width {}, but feature_dims gives {}",
                bert_size.hidden, dims.text);
    bertmodel = register_module("bertmodel", std::make_shared<BertTextEncoder>(bert_size));
  }
  auto bilstm = [](int64_t in, int64_t width) {
    return std::make_shared<LSTM>(in, width, 1, true, /*batch_first=*/true, /*bidirectional=*/true);
  };
  vrnn1 = register_module("vrnn1", bilstm(dims.vision, dims.vision));
  vrnn2 = register_module("vrnn2", bilstm(2 * dims.vision, dims.vision));
  arnn1 = register_module("arnn1", bilstm(dims.audio, dims.audio));
  arnn2 = register_module("arnn2", bilstm(2 * dims.audio, dims.audio));

  // An nn.Sequential of one Linear named "<group>_<suffix>" (MMSA's add_module names).
  auto one_linear = [&](const std::string& group, const std::string& suffix, int64_t in, int64_t out,
                        std::shared_ptr<Linear>& linear) {
    auto seq = register_module(group, std::make_shared<ModuleGroup>("Sequential"));
    linear = seq->add(group + suffix, std::make_shared<Linear>(in, out));
    return seq;
  };
  auto projection = [&](const std::string& m, int64_t in, std::shared_ptr<Linear>& linear,
                        std::shared_ptr<LayerNorm>& norm) {
    auto seq = one_linear("project_" + m, "", in, hidden, linear);
    norm = seq->add("project_" + m + "_layer_norm", std::make_shared<LayerNorm>(hidden));
    return seq;
  };
  project_t = projection("t", dims.text, project_t_linear, project_t_norm);
  project_v = projection("v", 4 * dims.vision, project_v_linear, project_v_norm);
  project_a = projection("a", 4 * dims.audio, project_a_linear, project_a_norm);
  private_t = one_linear("private_t", "_1", hidden, hidden, private_t_linear);
  private_v = one_linear("private_v", "_1", hidden, hidden, private_v_linear);
  private_a = one_linear("private_a", "_3", hidden, hidden, private_a_linear);  // "_3": MMSA's name
  shared = one_linear("shared", "_1", hidden, hidden, shared_linear);
  recon_t = one_linear("recon_t", "_1", hidden, hidden, recon_t_linear);
  recon_v = one_linear("recon_v", "_1", hidden, hidden, recon_v_linear);
  recon_a = one_linear("recon_a", "_1", hidden, hidden, recon_a_linear);
  std::shared_ptr<Linear> unused;
  sp_discriminator = one_linear("sp_discriminator", "_layer_1", hidden, 4, unused);
  fusion = one_linear("fusion", "_layer_1", 6 * hidden, 3 * hidden, fusion_layer_1);
  fusion_layer_3 = fusion->add("fusion_layer_3", std::make_shared<Linear>(3 * hidden, 1));
  tlayer_norm = register_module("tlayer_norm", std::make_shared<LayerNorm>(2 * dims.text));
  vlayer_norm = register_module("vlayer_norm", std::make_shared<LayerNorm>(2 * dims.vision));
  alayer_norm = register_module("alayer_norm", std::make_shared<LayerNorm>(2 * dims.audio));
  transformer_encoder = register_module("transformer_encoder", std::make_shared<ModuleGroup>("TransformerEncoder"));
  auto layers = transformer_encoder->add("layers", std::make_shared<ModuleList<TransformerEncoderLayer>>());
  fusion_transformer = layers->append(std::make_shared<TransformerEncoderLayer>(
      hidden, heads, config_int(config, "transformer_ff"), config_float(config, "transformer_dropout")));
}

Tensor MISA::utterance(LSTM& rnn1, LayerNorm& norm, LSTM& rnn2, const Tensor& x, const std::vector<int64_t>& lengths) {
  const int64_t B = x.size(0), D = rnn1.hidden_size;
  LSTMOutput first = rnn1.forward(x, lengths);                            // output [B, T, 2D], h_n [2, B, D]
  LSTMOutput second = rnn2.forward(norm.forward(first.output), lengths);  // steps past a length are not read
  Tensor h = concat({first.h_n, second.h_n}, 2);                          // [2 directions, B, 2D]
  return reshape(transpose(h, 0, 1), {B, 4 * D});                         // [h1 fwd, h2 fwd, h1 bwd, h2 bwd]
}

Representations MISA::encode(const ModelInput& input) {
  // The LSTMs read per-sample lengths on the host: a captured CUDA graph would replay the captured batch's.
  const bool reads_lengths = use_bert || !input.audio_lengths.empty() || !input.vision_lengths.empty();
  MSMIX_CHECK(!reads_lengths || !input.audio.defined() || !input.audio.is_cuda() || !cuda::capturing(),
              "MISA: its LSTMs read each sample's length on the host, and a captured CUDA graph would replay the "
              "captured batch's lengths every step; MISA's training steps run uncaptured");
  // text_bert [B, 3, L] (ids, mask, segments): BERT's input with use_bert; without, the file's when it has one,
  // whose mask the features are averaged over.
  const Tensor& ids = use_bert ? input.text : input.text_bert;
  if (use_bert) {
    MSMIX_CHECK(ids.defined() && ids.dim() == 3 && ids.size(1) == 3 && ids.size(2) > 0,
                "MISA (use_bert): expected text_bert [B, 3, L > 0] (token ids, mask, segments), got {}",
                ids.defined() ? describe(ids) : "undefined (the data has no text_bert)");
  } else if (ids.defined() && input.text.defined() && input.text.dim() == 3) {
    MSMIX_CHECK(
        ids.dim() == 3 && ids.size(0) == input.text.size(0) && ids.size(1) == 3 && ids.size(2) == input.text.size(1),
        "MISA: text_bert is {} but the text features are {}: it must be [B, 3, L] with their B and L", describe(ids),
        describe(input.text));
  }
  const Tensor mask = ids.defined() ? reshape(slice(ids, 1, 1, 2), {ids.size(0), ids.size(2)}) : Tensor();  // [B, L]
  if (!use_bert)
    return encode_states(input.text, mask, input.audio, input.vision, input.audio_lengths, input.vision_lengths);
  // MMSA's lengths: the mask's token counts, for audio and vision too.
  std::vector<int64_t> lengths;
  {
    NoGradGuard no_grad;
    for (float n : sum(mask, {1}).to_vector()) lengths.push_back(int64_t(std::lround(n)));
  }
  for (size_t i = 0; i < lengths.size(); ++i)
    MSMIX_CHECK(lengths[i] >= 1, "MISA (use_bert): sample {} of the batch has no text token (its mask is all 0)", i);
  return encode_states(bertmodel->forward(input.text), mask, input.audio, input.vision, lengths, lengths);
}

Representations MISA::encode_states(const Tensor& text_states, const Tensor& text_mask, const Tensor& audio,
                                    const Tensor& vision, const std::vector<int64_t>& audio_lengths,
                                    const std::vector<int64_t>& vision_lengths) {
  const int64_t B = text_states.defined() && text_states.dim() == 3 ? text_states.size(0) : -1;
  struct Check {
    const Tensor* x;
    const char* modality;
    int64_t width;
    const std::vector<int64_t>* lengths;
  };
  for (const Check& c : {Check{&text_states, "text", dims.text, nullptr},
                         Check{&audio, "audio", dims.audio, &audio_lengths},
                         Check{&vision, "vision", dims.vision, &vision_lengths}}) {
    MSMIX_CHECK(c.x->defined() && c.x->dim() == 3 && c.x->size(0) == B && c.x->size(1) > 0 && c.x->size(2) == c.width,
                "MISA: expected {} [B, T > 0, {}] with the batch of text, got {}", c.modality, c.width,
                c.x->defined() ? describe(*c.x) : "undefined");
    if (!c.lengths) continue;
    MSMIX_CHECK(c.lengths->empty() || int64_t(c.lengths->size()) == B, "MISA: {} {} lengths for a batch of {}",
                c.lengths->size(), c.modality, B);
    for (size_t i = 0; i < c.lengths->size(); ++i)
      MSMIX_CHECK((*c.lengths)[i] >= 1 && (*c.lengths)[i] <= c.x->size(1),
                  "MISA: sample {} has length {} but the {} sequence has {} steps ({}){}", i, (*c.lengths)[i],
                  c.modality, c.x->size(1), describe(*c.x),
                  use_bert ? "; with use_bert MMSA runs audio and vision over the text's token counts, so they need "
                             "at least as many steps as the text"
                           : "");
  }
  Tensor text;  // [B, Dt]
  if (text_mask.defined()) {
    MSMIX_CHECK(text_mask.shape() == Shape({B, text_states.size(1)}), "MISA: text mask {} for text states {}",
                describe(text_mask), describe(text_states));
    // A sample without tokens (mask all 0) would divide by 0: with use_bert encode() names it; here it is 0 / 1.
    Tensor tokens = clamp(sum(text_mask, {1}, /*keepdim=*/true), 1.0f, std::numeric_limits<float>::infinity());
    text = div(sum(mul(text_states, unsqueeze(text_mask, 2)), {1}), tokens);
  } else {
    text = mean(text_states, {1});
  }
  auto project = [](Linear& linear, LayerNorm& norm, const Tensor& x) { return norm.forward(relu(linear.forward(x))); };
  Representations r;
  r.t = project(*project_t_linear, *project_t_norm, text);
  r.a = project(*project_a_linear, *project_a_norm, utterance(*arnn1, *alayer_norm, *arnn2, audio, audio_lengths));
  r.v = project(*project_v_linear, *project_v_norm, utterance(*vrnn1, *vlayer_norm, *vrnn2, vision, vision_lengths));
  return r;
}

ModelOutput MISA::fuse(const Representations& z) {
  const int64_t B = z.t.defined() && z.t.dim() == 2 ? z.t.size(0) : -1;
  for (const auto& [x, m] : {std::pair{&z.t, "t"}, std::pair{&z.a, "a"}, std::pair{&z.v, "v"}})
    MSMIX_CHECK(x->defined() && x->shape() == Shape({B, hidden}),
                "MISA: representation {} must be [B, {}] with the batch of t, got {} (t: {})", m, hidden,
                x->defined() ? describe(*x) : "undefined", z.t.defined() ? describe(z.t) : "undefined");
  const int64_t n = z.original_rows > 0 ? z.original_rows : B;
  MSMIX_CHECK(n <= B, "MISA: {} original rows in a batch of {}", n, B);
  Tensor p_t = sigmoid(private_t_linear->forward(z.t)), p_v = sigmoid(private_v_linear->forward(z.v)),
         p_a = sigmoid(private_a_linear->forward(z.a));
  Tensor s_t = sigmoid(shared_linear->forward(z.t)), s_v = sigmoid(shared_linear->forward(z.v)),
         s_a = sigmoid(shared_linear->forward(z.a));

  // [p_t, p_v, p_a, s_t, s_v, s_a] as six tokens; the encoder's outputs side by side, token by token.
  std::vector<Tensor> tokens;
  for (const Tensor* x : {&p_t, &p_v, &p_a, &s_t, &s_v, &s_a}) tokens.push_back(unsqueeze(*x, 1));
  Tensor h = reshape(fusion_transformer->forward(concat(tokens, 1)), {B, 6 * hidden});
  Tensor prediction =
      fusion_layer_3->forward(relu(msmix::dropout(fusion_layer_1->forward(h), dropout, is_training())));

  // The regularisers, over the originals. (Each term cuts its own rows: cutting each vector once would sum the
  // grads in another order and move the recorded results in their last bits.)
  auto rows = [n, B](const Tensor& x) { return n == B ? x : slice(x, 0, 0, n); };
  Tensor diff = misa_diff_loss(rows(p_t), rows(s_t));
  for (const auto& [x1, x2] : {std::pair{&p_v, &s_v}, std::pair{&p_a, &s_a}, std::pair{&p_a, &p_t},
                               std::pair{&p_a, &p_v}, std::pair{&p_t, &p_v}})
    diff = add(diff, misa_diff_loss(rows(*x1), rows(*x2)));
  Tensor cmd = div(add(add(central_moment_discrepancy(rows(s_t), rows(s_v), cmd_moments),
                           central_moment_discrepancy(rows(s_t), rows(s_a), cmd_moments)),
                       central_moment_discrepancy(rows(s_a), rows(s_v), cmd_moments)),
                   3.0f);
  auto recon_error = [&](Linear& recon, const Tensor& p, const Tensor& s, const Tensor& u) {
    return mse_loss(recon.forward(add(rows(p), rows(s))), rows(u));
  };
  Tensor recon = div(add(add(recon_error(*recon_t_linear, p_t, s_t, z.t), recon_error(*recon_v_linear, p_v, s_v, z.v)),
                         recon_error(*recon_a_linear, p_a, s_a, z.a)),
                     3.0f);
  Tensor aux = add(add(mul(diff, diff_weight), mul(cmd, sim_weight)), mul(recon, recon_weight));
  return {prediction, aux};
}

}  // namespace msmix
