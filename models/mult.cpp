#include "models/mult.h"

#include <fmt/format.h>

#include <algorithm>

#include "engine/error.h"
#include "ops/ops.h"

namespace msmix {

namespace {

// What MMSA fixes for MulT on every dataset: its commonParams (unaligned data, frozen text features,
// attn_mask true, update_epochs 8 = gradient accumulation over 8 batches, early stop 8) and its trainer
// (trains/singleTask/MULT.py: L1 loss, Adam WITHOUT weight decay although the config lists one,
// clip_grad_value after every backward, ReduceLROnPlateau(min, factor 0.1, patience) on the validation loss).
// max_epochs is our bound: MMSA loops until the early stop fires.
Config mult_common() {
  return {{"need_normalized", false}, {"need_data_aligned", false}, {"use_bert", false},
          {"attn_mask", true},        {"loss", "l1"},                {"optimizer", "adam"},
          {"weight_decay", 0.0},      {"update_epochs", 8},          {"scheduler", "reduce_on_plateau"},
          {"scheduler_factor", 0.1},  {"early_stop", 8},             {"key_eval", "Loss"},
          {"max_epochs", 200}};
}

}  // namespace

Config mult_defaults(const std::string& dataset) {
  Config c = mult_common();
  // config_regression.json, mult.datasetParams (transformers / pretrained are for use_bert only: left out).
  if (dataset == "mosi" || dataset == "mosi-utterance") {
    c.update({{"dst_feature_dim_nheads", {50, 10}}, {"nlevels", 4}, {"conv1d_kernel_size_l", 5},
              {"conv1d_kernel_size_a", 5}, {"conv1d_kernel_size_v", 5}, {"text_dropout", 0.5},
              {"attn_dropout", 0.3}, {"attn_dropout_a", 0.2}, {"attn_dropout_v", 0.0}, {"relu_dropout", 0.0},
              {"embed_dropout", 0.2}, {"res_dropout", 0.0}, {"output_dropout", 0.5}, {"batch_size", 16},
              {"learning_rate", 2e-3}, {"grad_clip", 0.6}, {"patience", 5}});
    if (dataset == "mosi-utterance")  // one step per modality: a kernel wider than 1 cannot slide
      c.update({{"conv1d_kernel_size_l", 1}, {"conv1d_kernel_size_a", 1}, {"conv1d_kernel_size_v", 1},
                {"feature_dims", {100, 73, 100}}});
  } else if (dataset == "mosei") {
    c.update({{"dst_feature_dim_nheads", {30, 6}}, {"nlevels", 4}, {"conv1d_kernel_size_l", 5},
              {"conv1d_kernel_size_a", 1}, {"conv1d_kernel_size_v", 3}, {"text_dropout", 0.3},
              {"attn_dropout", 0.4}, {"attn_dropout_a", 0.0}, {"attn_dropout_v", 0.0}, {"relu_dropout", 0.0},
              {"embed_dropout", 0.0}, {"res_dropout", 0.0}, {"output_dropout", 0.5}, {"batch_size", 4},
              {"learning_rate", 5e-4}, {"grad_clip", 0.6}, {"patience", 20}});
  } else if (dataset == "sims") {
    c.update({{"dst_feature_dim_nheads", {50, 10}}, {"nlevels", 2}, {"conv1d_kernel_size_l", 5},
              {"conv1d_kernel_size_a", 1}, {"conv1d_kernel_size_v", 1}, {"text_dropout", 0.3},
              {"attn_dropout", 0.2}, {"attn_dropout_a", 0.1}, {"attn_dropout_v", 0.0}, {"relu_dropout", 0.0},
              {"embed_dropout", 0.1}, {"res_dropout", 0.2}, {"output_dropout", 0.1}, {"batch_size", 16},
              {"learning_rate", 2e-3}, {"grad_clip", 0.6}, {"patience", 10}});
  } else {
    throw Error(fmt::format("mult_defaults: unknown dataset '{}'; known: mosi, mosei, sims, mosi-utterance", dataset));
  }
  return c;
}

MULT::MULT(const FeatureDims& dims_, const Config& config) : dims(dims_) {
  std::vector<int64_t> dim_heads = config_ints(config, "dst_feature_dim_nheads", 2);
  d = dim_heads[0], num_heads = dim_heads[1];
  nlevels = config_int(config, "nlevels");
  kernel_l = config_int(config, "conv1d_kernel_size_l");
  kernel_a = config_int(config, "conv1d_kernel_size_a");
  kernel_v = config_int(config, "conv1d_kernel_size_v");
  attn_dropout = config_float(config, "attn_dropout");
  attn_dropout_a = config_float(config, "attn_dropout_a");
  attn_dropout_v = config_float(config, "attn_dropout_v");
  relu_dropout = config_float(config, "relu_dropout");
  embed_dropout = config_float(config, "embed_dropout");
  res_dropout = config_float(config, "res_dropout");
  output_dropout = config_float(config, "output_dropout");
  text_dropout = config_float(config, "text_dropout");
  attn_mask = config_bool(config, "attn_mask");
  MSMIX_CHECK(d > 0 && num_heads > 0 && d % num_heads == 0,
              "MULT: dst_feature_dim_nheads = [{}, {}]: the width must be a positive multiple of the head count", d,
              num_heads);
  MSMIX_CHECK(nlevels >= 0, "MULT: nlevels must be >= 0, got {}", nlevels);
  MSMIX_CHECK(kernel_l > 0 && kernel_a > 0 && kernel_v > 0,
              "MULT: conv1d kernel sizes (l, a, v) must be positive, got ({}, {}, {})", kernel_l, kernel_a, kernel_v);
  MSMIX_CHECK(dims.text > 0 && dims.audio > 0 && dims.vision > 0,
              "MULT: feature dims (text, audio, vision) must be positive, got ({}, {}, {})", dims.text, dims.audio,
              dims.vision);
  MSMIX_CHECK(output_dropout >= 0 && output_dropout < 1 && text_dropout >= 0 && text_dropout < 1,
              "MULT: output_dropout {} and text_dropout {} must be in [0, 1)", output_dropout, text_dropout);

  // MMSA's registration order (= its state_dict and parameters() order).
  proj_l = register_module("proj_l", std::make_shared<Conv1d>(dims.text, d, kernel_l, 0, false));
  proj_a = register_module("proj_a", std::make_shared<Conv1d>(dims.audio, d, kernel_a, 0, false));
  proj_v = register_module("proj_v", std::make_shared<Conv1d>(dims.vision, d, kernel_v, 0, false));
  auto encoder = [&](const char* name, int64_t width, float attn_p, int64_t layers) {
    return register_module(
        name, std::make_shared<MultTransformerEncoder>(width, num_heads, layers, attn_p, relu_dropout, res_dropout,
                                                       embed_dropout, attn_mask));
  };
  trans_l_with_a = encoder("trans_l_with_a", d, attn_dropout_a, nlevels);
  trans_l_with_v = encoder("trans_l_with_v", d, attn_dropout_v, nlevels);
  trans_a_with_l = encoder("trans_a_with_l", d, attn_dropout, nlevels);
  trans_a_with_v = encoder("trans_a_with_v", d, attn_dropout_v, nlevels);
  trans_v_with_l = encoder("trans_v_with_l", d, attn_dropout, nlevels);
  trans_v_with_a = encoder("trans_v_with_a", d, attn_dropout_a, nlevels);
  const int64_t mem_layers = std::max<int64_t>(nlevels, 3);
  trans_l_mem = encoder("trans_l_mem", 2 * d, attn_dropout, mem_layers);
  trans_a_mem = encoder("trans_a_mem", 2 * d, attn_dropout, mem_layers);
  trans_v_mem = encoder("trans_v_mem", 2 * d, attn_dropout, mem_layers);
  const int64_t combined = 6 * d;
  proj1 = register_module("proj1", std::make_shared<Linear>(combined, combined));
  proj2 = register_module("proj2", std::make_shared<Linear>(combined, combined));
  out_layer = register_module("out_layer", std::make_shared<Linear>(combined, 1));
}

Tensor MULT::project(const Tensor& x, const Conv1d& conv, int64_t width, const char* modality, const char* kernel_key) {
  if (width == d) return x;  // MMSA skips the projection; proj_* stays in the state dict and gets no grad
  const int64_t T = x.size(1), K = conv.kernel_size;
  MSMIX_CHECK(T >= K,
              "MULT: the {} sequence has {} step(s) (input {}), fewer than its Conv1d kernel {} = {}; set {}=1 "
              "(for utterance-level data with one step per modality, e.g. mult_defaults(\"mosi-utterance\"))",
              modality, T, describe(x), kernel_key, K, kernel_key);
  // A width-1 kernel is a Linear over the features: no transposes. weight [d, width, 1] -> [d, width].
  if (K == 1) return linear(x, reshape(conv.weight, {d, width}), Tensor());
  return conv.forward_time_major(x);  // [B, T - K + 1, d] (no padding, no bias)
}

Representations MULT::encode(const ModelInput& input) {
  struct Check {
    const Tensor* x;
    const char* modality;
    int64_t width;
  };
  for (const Check& c : {Check{&input.text, "text", dims.text}, Check{&input.audio, "audio", dims.audio},
                         Check{&input.vision, "vision", dims.vision}}) {
    MSMIX_CHECK(c.x->defined() && c.x->dim() == 3 && c.x->size(2) == c.width && c.x->size(1) > 0,
                "MULT: expected {} [B, T > 0, {}], got {}", c.modality, c.width,
                c.x->defined() ? describe(*c.x) : "undefined");
    MSMIX_CHECK(c.x->size(0) == input.text.size(0), "MULT: batch sizes differ: text {}, {} {}",
                describe(input.text), c.modality, describe(*c.x));
  }
  Representations r;
  r.t = project(dropout(input.text, text_dropout, is_training()), *proj_l, dims.text, "text",
                "conv1d_kernel_size_l");
  r.a = project(input.audio, *proj_a, dims.audio, "audio", "conv1d_kernel_size_a");
  r.v = project(input.vision, *proj_v, dims.vision, "vision", "conv1d_kernel_size_v");
  return r;
}

ModelOutput MULT::fuse(const Representations& z) {
  const int64_t B = z.t.defined() && z.t.dim() == 3 ? z.t.size(0) : -1;
  for (const auto& [x, m] : {std::pair{&z.t, "t"}, std::pair{&z.a, "a"}, std::pair{&z.v, "v"}})
    MSMIX_CHECK(x->defined() && x->dim() == 3 && x->size(0) == B && x->size(1) > 0 && x->size(2) == d,
                "MULT: representation {} must be [B, T > 0, {}] with the batch of t, got {} (t: {})", m, d,
                x->defined() ? describe(*x) : "undefined", z.t.defined() ? describe(z.t) : "undefined");
  // Per target modality: attend to each other modality, concatenate [B, T, 2d], self-attend, keep the last
  // step [B, 2d].
  auto branch = [&](MultTransformerEncoder& mem, MultTransformerEncoder& with_x, MultTransformerEncoder& with_y,
                    const Tensor& target, const Tensor& x, const Tensor& y) {
    Tensor h = concat({with_x.forward(target, x), with_y.forward(target, y)}, 2);
    return reshape(mem.forward(h, Tensor(), /*last_only=*/true), {B, 2 * d});
  };
  Tensor last = concat({branch(*trans_l_mem, *trans_l_with_a, *trans_l_with_v, z.t, z.a, z.v),
                        branch(*trans_a_mem, *trans_a_with_l, *trans_a_with_v, z.a, z.t, z.v),
                        branch(*trans_v_mem, *trans_v_with_l, *trans_v_with_a, z.v, z.t, z.a)},
                       1);  // [B, 6d]
  Tensor h = proj2->forward(dropout(relu(proj1->forward(last)), output_dropout, is_training()));
  return {out_layer->forward(add(h, last)), Tensor()};
}

}  // namespace msmix
