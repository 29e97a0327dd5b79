#include "models/almt_layers.h"

#include <cmath>

#include "engine/error.h"
#include "models/attention.h"
#include "models/init.h"
#include "ops/ops.h"

namespace msmix {

namespace {

// The attention between projections, heads side by side: q [B, L, heads * dim_head], k and v
// [B, S, heads * dim_head] -> [B, L, heads * dim_head]. ALMT has no masks and no attention dropout.
Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads, int64_t dim_head) {
  return attention_heads(q, k, v, heads, 1.0f / std::sqrt(float(dim_head)), Tensor(), Tensor(), 0, false).out;
}

void check_sizes(const char* what, int64_t dim, int64_t heads, int64_t dim_head) {
  MSMIX_CHECK(dim > 0 && heads > 0 && dim_head > 0, "ALMT {}: dim {}, heads {} and dim_head {} must be positive", what,
              dim, heads, dim_head);
}

void check_input(const char* what, const Tensor& x, int64_t dim) {
  MSMIX_CHECK(x.defined() && x.dim() == 3 && x.size(2) == dim && x.size(1) > 0,
              "ALMT {}: expected [B, T > 0, {}], got {}", what, dim, x.defined() ? describe(x) : "undefined");
}

}  // namespace

void AlmtAttentionBase::register_output(int64_t dim, int64_t heads, int64_t dim_head) {
  if (heads == 1 && dim_head == dim) return;  // ALMT's project_out: one head as wide as the model is not projected
  to_out = register_module("to_out", std::make_shared<Sequential>());
  out = to_out->set(0, std::make_shared<Linear>(heads * dim_head, dim));
}

AlmtAttention::AlmtAttention(int64_t dim_, int64_t heads_, int64_t dim_head_)
    : dim(dim_), heads(heads_), dim_head(dim_head_) {
  check_sizes("attention", dim, heads, dim_head);
  const int64_t inner = heads * dim_head;
  to_q = register_module("to_q", std::make_shared<Linear>(dim, inner, false));
  to_k = register_module("to_k", std::make_shared<Linear>(dim, inner, false));
  to_v = register_module("to_v", std::make_shared<Linear>(dim, inner, false));
  register_output(dim, heads, dim_head);
}

Tensor AlmtAttention::forward(const Tensor& q, const Tensor& k, const Tensor& v) {
  ProfileRange range(range_name());
  check_input("attention query", q, dim);
  check_input("attention key", k, dim);
  check_input("attention value", v, dim);
  MSMIX_CHECK(k.size(0) == q.size(0) && v.size(0) == q.size(0) && v.size(1) == k.size(1),
              "ALMT attention: batch or key/value lengths differ: query {}, key {}, value {}", describe(q), describe(k),
              describe(v));
  return project_out(attend(to_q->forward(q), to_k->forward(k), to_v->forward(v), heads, dim_head));
}

AlmtPreNormAttention::AlmtPreNormAttention(int64_t dim, int64_t heads, int64_t dim_head) {
  norm_q = register_module("norm_q", std::make_shared<LayerNorm>(dim));
  norm_k = register_module("norm_k", std::make_shared<LayerNorm>(dim));
  norm_v = register_module("norm_v", std::make_shared<LayerNorm>(dim));
  fn = register_module("fn", std::make_shared<AlmtAttention>(dim, heads, dim_head));
}

Tensor AlmtPreNormAttention::forward(const Tensor& q, const Tensor& k, const Tensor& v) {
  return fn->forward(norm_q->forward(q), norm_k->forward(k), norm_v->forward(v));
}

AlmtFeedForward::AlmtFeedForward(int64_t dim, int64_t hidden) {
  MSMIX_CHECK(dim > 0 && hidden > 0, "ALMT feed-forward: widths must be positive, got {} -> {}", dim, hidden);
  net = register_module("net", std::make_shared<Sequential>());
  fc1 = net->set(0, std::make_shared<Linear>(dim, hidden));  // net.1 GELU, net.2 Dropout(0)
  fc2 = net->set(3, std::make_shared<Linear>(hidden, dim));  // net.4 Dropout(0)
}

Tensor AlmtFeedForward::forward(const Tensor& x) { return fc2->forward(gelu(fc1->forward(x))); }

AlmtPreNormForward::AlmtPreNormForward(int64_t dim, int64_t hidden) {
  norm = register_module("norm", std::make_shared<LayerNorm>(dim));
  fn = register_module("fn", std::make_shared<AlmtFeedForward>(dim, hidden));
}

Tensor AlmtPreNormForward::forward(const Tensor& x) { return fn->forward(norm->forward(x)); }

AlmtEncoderLayer::AlmtEncoderLayer(int64_t dim, int64_t heads, int64_t dim_head, int64_t mlp_dim) {
  attention = register_module("0", std::make_shared<AlmtPreNormAttention>(dim, heads, dim_head));
  feed_forward = register_module("1", std::make_shared<AlmtPreNormForward>(dim, mlp_dim));
}

Tensor AlmtEncoderLayer::forward(const Tensor& x, const Tensor& kv) {
  ProfileRange range(range_name());
  Tensor h = add(attention->forward(x, kv, kv), x);
  return add(feed_forward->forward(h), h);
}

AlmtEncoder::AlmtEncoder(int64_t dim_, int64_t depth, int64_t heads, int64_t dim_head, int64_t mlp_dim) : dim(dim_) {
  MSMIX_CHECK(depth >= 0, "ALMT encoder: depth must be >= 0, got {}", depth);
  layers = register_module("layers", std::make_shared<ModuleList<AlmtEncoderLayer>>());
  for (int64_t i = 0; i < depth; ++i) layers->append(std::make_shared<AlmtEncoderLayer>(dim, heads, dim_head, mlp_dim));
}

Tensor AlmtEncoder::forward(const Tensor& x_in, int64_t keep) {
  check_input("encoder input", x_in, dim);
  MSMIX_CHECK(keep >= 0 && keep <= x_in.size(1), "ALMT encoder: keep {} must be in [0, {}]", keep, x_in.size(1));
  Tensor x = x_in;
  for (size_t i = 0; i < layers->size(); ++i) {
    const bool last = i + 1 == layers->size();
    // Every op of a layer but the attention acts on each position alone, so the last layer's queries can be
    // cut to the kept positions before it runs.
    x = last && keep > 0 ? (*layers)[i]->forward(slice(x, 1, 0, keep), x) : (*layers)[i]->forward(x, x);
  }
  return keep > 0 && layers->size() == 0 ? slice(x, 1, 0, keep) : x;
}

std::vector<Tensor> AlmtEncoder::forward_hidden(const Tensor& x) {
  check_input("encoder input", x, dim);
  std::vector<Tensor> hidden = {x};
  for (const auto& layer : layers->items) hidden.push_back(layer->forward(hidden.back(), hidden.back()));
  return hidden;
}

Tensor AlmtEncoder::forward_cross(const Tensor& source, const Tensor& target) {
  check_input("cross-encoder source", source, dim);
  check_input("cross-encoder target", target, dim);
  Tensor x = target;
  for (const auto& layer : layers->items) x = layer->forward(x, source);
  return x;
}

AlmtTransformer::AlmtTransformer(int64_t frames_, int64_t tokens_, int64_t dim_, int64_t depth, int64_t heads,
                                 int64_t mlp_dim, int64_t dim_head)
    : frames(frames_), tokens(tokens_), dim(dim_) {
  MSMIX_CHECK(frames > 0 && tokens >= 0 && dim > 0,
              "ALMT transformer: frames {} and dim {} must be positive, tokens {} >= 0", frames, dim, tokens);
  // ALMT's registration order: pos_embedding, extra_token, encoder.
  pos_embedding = register_parameter("pos_embedding", Tensor::empty({1, frames + tokens, dim}));
  init::normal_(pos_embedding);
  if (tokens > 0) extra_token = register_parameter("extra_token", Tensor::zeros({1, tokens, dim}));
  encoder = register_module("encoder", std::make_shared<AlmtEncoder>(dim, depth, heads, dim_head, mlp_dim));
}

Tensor AlmtTransformer::embed(const Tensor& x) {
  check_input("transformer input", x, dim);
  const int64_t B = x.size(0), T = x.size(1);
  MSMIX_CHECK(T <= frames,
              "ALMT transformer: the input has {} steps ({}), more than the {} its positional table covers; raise "
              "feature_length for this modality (ALMT sizes the table from it)",
              T, describe(x), frames);
  Tensor h = tokens > 0 ? concat({expand(extra_token, {B, tokens, dim}), x}, 1) : x;  // [B, tokens + T, dim]
  return add(h, slice(pos_embedding, 1, 0, tokens + T));
}

Tensor AlmtTransformer::forward(const Tensor& x, int64_t keep) {
  ProfileRange range(range_name());
  return encoder->forward(embed(x), keep);
}

std::vector<Tensor> AlmtTransformer::forward_hidden(const Tensor& x) {
  ProfileRange range(range_name());
  return encoder->forward_hidden(embed(x));
}

AlmtHyperLearning::AlmtHyperLearning(int64_t dim, int64_t heads_, int64_t dim_head_)
    : heads(heads_), dim_head(dim_head_) {
  check_sizes("hyper-modality layer", dim, heads, dim_head);
  const int64_t inner = heads * dim_head;
  to_q = register_module("to_q", std::make_shared<Linear>(dim, inner, false));
  to_k_ta = register_module("to_k_ta", std::make_shared<Linear>(dim, inner, false));
  to_k_tv = register_module("to_k_tv", std::make_shared<Linear>(dim, inner, false));
  to_v_ta = register_module("to_v_ta", std::make_shared<Linear>(dim, inner, false));
  to_v_tv = register_module("to_v_tv", std::make_shared<Linear>(dim, inner, false));
  register_output(dim, heads, dim_head);
}

Tensor AlmtHyperLearning::forward(const Tensor& t, const Tensor& a, const Tensor& v) {
  Tensor q = to_q->forward(t);
  Tensor sum = add(attend(q, to_k_ta->forward(a), to_v_ta->forward(a), heads, dim_head),
                   attend(q, to_k_tv->forward(v), to_v_tv->forward(v), heads, dim_head));
  return project_out(sum);
}

AlmtHyperLayer::AlmtHyperLayer(int64_t dim, int64_t heads, int64_t dim_head) {
  norm1 = register_module("norm1", std::make_shared<LayerNorm>(dim));
  norm2 = register_module("norm2", std::make_shared<LayerNorm>(dim));
  norm3 = register_module("norm3", std::make_shared<LayerNorm>(dim));
  norm4 = register_module("norm4", std::make_shared<LayerNorm>(dim));
  fn = register_module("fn", std::make_shared<AlmtHyperLearning>(dim, heads, dim_head));
}

Tensor AlmtHyperLayer::forward(const Tensor& h_t, const Tensor& h_a, const Tensor& h_v, const Tensor& h_hyper) {
  ProfileRange range(range_name());
  const int64_t dim = norm1->normalized_size;
  check_input("hyper-modality text", h_t, dim);
  check_input("hyper-modality audio", h_a, dim);
  check_input("hyper-modality vision", h_v, dim);
  check_input("hyper-modality state", h_hyper, dim);
  MSMIX_CHECK(h_a.size(0) == h_t.size(0) && h_v.size(0) == h_t.size(0) && h_hyper.size(0) == h_t.size(0) &&
                  h_hyper.size(1) == h_t.size(1),
              "ALMT hyper-modality layer: text {}, audio {}, vision {}, state {} must share the batch, and the state "
              "the text's length",
              describe(h_t), describe(h_a), describe(h_v), describe(h_hyper));
  return add(norm4->forward(h_hyper), fn->forward(norm1->forward(h_t), norm2->forward(h_a), norm3->forward(h_v)));
}

AlmtHyperEncoder::AlmtHyperEncoder(int64_t dim, int64_t depth, int64_t heads, int64_t dim_head) {
  MSMIX_CHECK(depth >= 0, "ALMT hyper-modality encoder: depth must be >= 0, got {}", depth);
  layers = register_module("layers", std::make_shared<ModuleList<ModuleList<AlmtHyperLayer>>>());
  for (int64_t i = 0; i < depth; ++i)
    layers->append(std::make_shared<ModuleList<AlmtHyperLayer>>())
        ->append(std::make_shared<AlmtHyperLayer>(dim, heads, dim_head));
}

Tensor AlmtHyperEncoder::forward(const std::vector<Tensor>& text_hidden, const Tensor& h_a, const Tensor& h_v,
                                 Tensor h_hyper) {
  MSMIX_CHECK(text_hidden.size() >= layers->size(),
              "ALMT hyper-modality encoder: {} layers need {} text states, got {}", layers->size(), layers->size(),
              text_hidden.size());
  for (size_t i = 0; i < layers->size(); ++i) h_hyper = (*(*layers)[i])[0]->forward(text_hidden[i], h_a, h_v, h_hyper);
  return h_hyper;
}

AlmtCrossTransformer::AlmtCrossTransformer(int64_t source_frames_, int64_t target_frames_, int64_t dim_, int64_t depth,
                                           int64_t heads, int64_t mlp_dim, int64_t dim_head)
    : source_frames(source_frames_), target_frames(target_frames_), dim(dim_) {
  MSMIX_CHECK(source_frames > 0 && target_frames > 0 && dim > 0,
              "ALMT cross transformer: frames ({}, {}) and dim {} must be positive", source_frames, target_frames, dim);
  pos_embedding_s = register_parameter("pos_embedding_s", Tensor::empty({1, source_frames + 1, dim}));
  init::normal_(pos_embedding_s);
  pos_embedding_t = register_parameter("pos_embedding_t", Tensor::empty({1, target_frames + 1, dim}));
  init::normal_(pos_embedding_t);
  extra_token = register_parameter("extra_token", Tensor::zeros({1, 1, dim}));
  cross_encoder = register_module("CrossTransformerEncoder",
                                  std::make_shared<AlmtEncoder>(dim, depth, heads, dim_head, mlp_dim));
}

Tensor AlmtCrossTransformer::forward(const Tensor& source, const Tensor& target) {
  ProfileRange range(range_name());
  check_input("cross transformer source", source, dim);
  check_input("cross transformer target", target, dim);
  const int64_t B = source.size(0), S = source.size(1), T = target.size(1);
  MSMIX_CHECK(target.size(0) == B && S <= source_frames && T <= target_frames,
              "ALMT cross transformer: source {} and target {} must share the batch and fit the positional tables "
              "({} and {} steps)",
              describe(source), describe(target), source_frames, target_frames);
  Tensor token = expand(extra_token, {B, 1, dim});
  Tensor s = add(concat({token, source}, 1), slice(pos_embedding_s, 1, 0, S + 1));
  Tensor t = add(concat({token, target}, 1), slice(pos_embedding_t, 1, 0, T + 1));
  return cross_encoder->forward_cross(s, t);
}

}  // namespace msmix
