// ALMT's building blocks (shared/spec/almt.md), as MMSA v2.2.1's models/singleTask/ALMT.py builds them, with its
// module and parameter names so its state dicts load name for name:
//   AlmtAttention      "Attention": to_q, to_k, to_v (no bias, dim -> heads * dim_head), per head
//                      softmax(q k^T / sqrt(dim_head)) v, heads side by side, to_out.0 (-> dim, with bias)
//   AlmtPreNormAttention  norm_q, norm_k, norm_v (three LayerNorms even in self-attention), fn
//   AlmtPreNormForward    norm, fn.net.0 (Linear), exact GELU, fn.net.3 (Linear)
//   AlmtEncoder        layers.<i>.0 (attention block), layers.<i>.1 (feed-forward block), each with a residual:
//                      x <- fn(LN_q(x), LN_k(kv), LN_v(kv)) + x; x <- ff(x) + x; no final LayerNorm
//   AlmtTransformer    pos_embedding (1, frames + tokens, dim) ~ N(0, 1), extra_token (1, tokens, dim) = 0 (when
//                      tokens > 0, prepended), encoder
//   AlmtHyperLayer     "PreNormAHL": norm1..norm4, fn.{to_q, to_k_ta, to_k_tv, to_v_ta, to_v_tv} (no bias),
//                      fn.to_out.0; H <- LN4(H) + to_out(attn(q, k_ta, v_ta) + attn(q, k_tv, v_tv))
//   AlmtHyperEncoder   layers.<i>.0: hyper-modality layer i
//   AlmtCrossTransformer  pos_embedding_s, pos_embedding_t (1, frames + 1, dim) ~ N(0, 1), extra_token (1, 1, dim)
//                      = 0 prepended to both, CrossTransformerEncoder (an AlmtEncoder: target attends to source)
// Every ALMT dropout is 0, so none is modelled. Shapes: [B, T, dim] batch-first throughout.
#pragma once
#include <memory>
#include <vector>

#include "models/layer_norm.h"
#include "models/linear.h"
#include "models/module.h"
#include "models/module_list.h"

namespace msmix {

// What ALMT's two attention modules share: the output projection to_out.0 (heads * dim_head -> dim, with bias),
// absent (identity) for one head exactly as wide as dim (ALMT's project_out).
class AlmtAttentionBase : public Module {
 public:
  std::shared_ptr<Sequential> to_out;  // undefined without an output projection
  std::shared_ptr<Linear> out;         // to_out.0

 protected:
  // Call after registering the input projections (the state dict's order).
  void register_output(int64_t dim, int64_t heads, int64_t dim_head);
  Tensor project_out(const Tensor& context) { return out ? out->forward(context) : context; }
};

class AlmtAttention : public AlmtAttentionBase {
 public:
  const char* kind() const override { return "Attention"; }
  // One head exactly as wide as dim has no output projection (ALMT's project_out).
  AlmtAttention(int64_t dim, int64_t heads, int64_t dim_head);
  // q [B, L, dim], k and v [B, S, dim] -> [B, L, dim]
  Tensor forward(const Tensor& q, const Tensor& k, const Tensor& v);

  int64_t dim, heads, dim_head;
  std::shared_ptr<Linear> to_q, to_k, to_v;
};

class AlmtPreNormAttention : public Module {
 public:
  const char* kind() const override { return "PreNormAttention"; }
  AlmtPreNormAttention(int64_t dim, int64_t heads, int64_t dim_head);
  Tensor forward(const Tensor& q, const Tensor& k, const Tensor& v);  // fn(norm_q(q), norm_k(k), norm_v(v))

  std::shared_ptr<LayerNorm> norm_q, norm_k, norm_v;
  std::shared_ptr<AlmtAttention> fn;
};

class AlmtFeedForward : public Module {
 public:
  const char* kind() const override { return "FeedForward"; }
  AlmtFeedForward(int64_t dim, int64_t hidden);
  Tensor forward(const Tensor& x);  // net.3(GELU(net.0(x)))

  std::shared_ptr<Sequential> net;
  std::shared_ptr<Linear> fc1, fc2;  // net.0, net.3
};

class AlmtPreNormForward : public Module {
 public:
  const char* kind() const override { return "PreNormForward"; }
  AlmtPreNormForward(int64_t dim, int64_t hidden);
  Tensor forward(const Tensor& x);  // fn(norm(x)), no residual (the encoder adds it)

  std::shared_ptr<LayerNorm> norm;
  std::shared_ptr<AlmtFeedForward> fn;
};

// One encoder layer: children "0" (attention block) and "1" (feed-forward block), an nn.ModuleList in ALMT.
class AlmtEncoderLayer : public Module {
 public:
  const char* kind() const override { return "ModuleList"; }
  AlmtEncoderLayer(int64_t dim, int64_t heads, int64_t dim_head, int64_t mlp_dim);
  // x [B, L, dim] attends to kv [B, S, dim] (kv = x: self-attention); both residuals added.
  Tensor forward(const Tensor& x, const Tensor& kv);

  std::shared_ptr<AlmtPreNormAttention> attention;  // "0"
  std::shared_ptr<AlmtPreNormForward> feed_forward;  // "1"
};

class AlmtEncoder : public Module {
 public:
  const char* kind() const override { return "TransformerEncoder"; }
  AlmtEncoder(int64_t dim, int64_t depth, int64_t heads, int64_t dim_head, int64_t mlp_dim);

  // Self-attention through every layer. keep > 0: only the first `keep` positions are returned, [B, keep, dim],
  // and the last layer computes only those queries (its keys and values still cover every position): the same
  // numbers as computing all and slicing, for a fraction of the work when a long sequence is cut to its tokens.
  Tensor forward(const Tensor& x, int64_t keep = 0);
  // Self-attention, returning [x, after layer 1, ..., after layer depth] (ALMT's save_hidden).
  std::vector<Tensor> forward_hidden(const Tensor& x);
  // Cross-attention: target [B, L, dim] attends to source [B, S, dim] in every layer; returns the new target.
  Tensor forward_cross(const Tensor& source, const Tensor& target);

  int64_t dim;
  std::shared_ptr<ModuleList<AlmtEncoderLayer>> layers;
};

class AlmtTransformer : public Module {
 public:
  const char* kind() const override { return "Transformer"; }
  // frames: the longest input the positional table covers; tokens: learned tokens prepended (0: none).
  AlmtTransformer(int64_t frames, int64_t tokens, int64_t dim, int64_t depth, int64_t heads, int64_t mlp_dim,
                  int64_t dim_head = 64);
  // x [B, T, dim] with T <= frames -> [B, tokens + T, dim] with the learned tokens first, plus the positional
  // table's first tokens + T rows. keep > 0: only the first `keep` output positions (see AlmtEncoder).
  Tensor forward(const Tensor& x, int64_t keep = 0);
  std::vector<Tensor> forward_hidden(const Tensor& x);  // AlmtEncoder::forward_hidden after the embedding

  int64_t frames, tokens, dim;
  Tensor pos_embedding, extra_token;  // extra_token undefined when tokens = 0
  std::shared_ptr<AlmtEncoder> encoder;

 private:
  Tensor embed(const Tensor& x);
};

// ALMT's HhyperLearningLayer: q from the text, keys and values from audio and from vision, 8 heads;
// shift = to_out(attn(q, k_ta, v_ta) + attn(q, k_tv, v_tv)).
class AlmtHyperLearning : public AlmtAttentionBase {
 public:
  const char* kind() const override { return "HhyperLearningLayer"; }
  AlmtHyperLearning(int64_t dim, int64_t heads, int64_t dim_head);
  // t [B, L, dim], a [B, Sa, dim], v [B, Sv, dim] (already normalised) -> shift [B, L, dim]
  Tensor forward(const Tensor& t, const Tensor& a, const Tensor& v);

  int64_t heads, dim_head;
  std::shared_ptr<Linear> to_q, to_k_ta, to_k_tv, to_v_ta, to_v_tv;
};

// ALMT's PreNormAHL around it: H <- LN4(H) + fn(LN1(h_t), LN2(h_a), LN3(h_v)) (the residual goes onto the
// normalised H, as ALMT adds the shift in place to norm4's output).
class AlmtHyperLayer : public Module {
 public:
  const char* kind() const override { return "PreNormAHL"; }
  AlmtHyperLayer(int64_t dim, int64_t heads, int64_t dim_head);
  // h_t, h_hyper [B, L, dim], h_a [B, Sa, dim], h_v [B, Sv, dim] -> the new h_hyper [B, L, dim]
  Tensor forward(const Tensor& h_t, const Tensor& h_a, const Tensor& h_v, const Tensor& h_hyper);

  std::shared_ptr<LayerNorm> norm1, norm2, norm3, norm4;
  std::shared_ptr<AlmtHyperLearning> fn;
};

// ALMT's HhyperLearningEncoder: layers.<i>.0 is hyper-modality layer i (an nn.ModuleList of one PreNormAHL).
class AlmtHyperEncoder : public Module {
 public:
  const char* kind() const override { return "HhyperLearningEncoder"; }
  AlmtHyperEncoder(int64_t dim, int64_t depth, int64_t heads, int64_t dim_head);
  // Layer i reads text_hidden[i] (needs at least depth of them): h_hyper [B, L, dim] -> the final h_hyper.
  Tensor forward(const std::vector<Tensor>& text_hidden, const Tensor& h_a, const Tensor& h_v, Tensor h_hyper);

  std::shared_ptr<ModuleList<ModuleList<AlmtHyperLayer>>> layers;
};

class AlmtCrossTransformer : public Module {
 public:
  const char* kind() const override { return "CrossTransformer"; }
  AlmtCrossTransformer(int64_t source_frames, int64_t target_frames, int64_t dim, int64_t depth, int64_t heads,
                       int64_t mlp_dim, int64_t dim_head = 64);
  // source [B, S, dim], target [B, T, dim] -> the target stream [B, T + 1, dim] (position 0: the shared token).
  Tensor forward(const Tensor& source, const Tensor& target);

  int64_t source_frames, target_frames, dim;
  Tensor pos_embedding_s, pos_embedding_t, extra_token;
  std::shared_ptr<AlmtEncoder> cross_encoder;  // "CrossTransformerEncoder"
};

}  // namespace msmix
