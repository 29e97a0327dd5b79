// MulT's transformer as MMSA v2.2.1 builds it (models/subNets/transformers_encoder/transformer.py, adapted
// there from fairseq), with its state-dict names:
//   <encoder>.layers.<i>.self_attn.{in_proj_weight, in_proj_bias, out_proj.weight, out_proj.bias}
//   <encoder>.layers.<i>.fc1.*, .fc2.*, .layer_norms.0.*, .layer_norms.1.*
//   <encoder>.version (a buffer [1] = 2), <encoder>.layer_norm.*
// It differs from torch.nn.TransformerEncoderLayer (models/transformer.h) in names and in what it does:
//   x = sqrt(E) * x_in, embedding dropout (on the keys/values too, each with its own mask), no positional
//   embedding (MMSA's MULT leaves position_embedding false), then per layer, pre-norm:
//     x = x + dropout_res(attn(LN0(x), LN0(x_k), LN0(x_v)))          (keys/values: the scaled source, every
//     x = x + dropout_res(fc2(dropout_relu(relu(fc1(LN1(x))))))       layer, through that layer's LN0)
//   and a final layer_norm. fc1/fc2 and the attention's projections start xavier-uniform with zero biases.
// The attention is models/attention.h's MultiheadAttention (PyTorch's names and math: q scaled by
// head_dim^-1/2 after its bias, dropout on the weights), with MMSA's xavier-uniform out_proj init.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/attention.h"
#include "models/layer_norm.h"
#include "models/linear.h"
#include "models/module.h"
#include "models/module_list.h"

namespace msmix {

// The sinusoidal positions MulT's encoder adds when position_embedding is on (fairseq's
// SinusoidalPositionalEmbedding with padding index 0): for x [B, L, E], step t of a sample gets row t + 1 of the
// table [sin(p f_0), ..., sin(p f_{h-1}), cos(p f_0), ..., cos(p f_{h-1})], f_j = exp(-j ln(1e4) / (h - 1)),
// h = E / 2 (a zero column last when E is odd), where the step's first channel is non-zero; else zeros.
// Needs E >= 4. Returns [B, L, E], no grad.
Tensor sinusoidal_positions(const Tensor& x);

// MMSA's attention mask, [Lq, Lk]: -inf where j >= i + 1 + |Lk - Lq| (causal when Lq = Lk), 0 elsewhere.
// Undefined when no pair is masked (e.g. Lq = 375 queries over Lk = 50 keys), so callers skip the add.
// Row i always keeps key 0, so no query loses all its keys.
Tensor mult_future_mask(int64_t Lq, int64_t Lk, Device device = Device::cpu());

class MultTransformerEncoderLayer : public Module {
 public:
  const char* kind() const override { return "TransformerEncoderLayer"; }
  MultTransformerEncoderLayer(int64_t embed_dim, int64_t num_heads, float attn_dropout, float relu_dropout,
                              float res_dropout);

  // x [B, Lq, E]. x_k, x_v [B, Lk, E] (both undefined: self-attention; the same tensor: one LayerNorm and
  // one K/V GEMM). mask: additive [Lq, Lk] or undefined. last_only: only the last query position is
  // computed and returned, [B, 1, E] (the keys and values still cover every position); mask must then be
  // undefined (the last row of MMSA's mask never masks anything).
  Tensor forward(const Tensor& x, const Tensor& x_k, const Tensor& x_v, const Tensor& mask, bool last_only = false);

  int64_t embed_dim;
  float relu_dropout, res_dropout;
  std::shared_ptr<MultiheadAttention> self_attn;
  std::shared_ptr<Linear> fc1, fc2;
  std::shared_ptr<ModuleList<LayerNorm>> layer_norms;
};

class MultTransformerEncoder : public Module {
 public:
  const char* kind() const override { return "TransformerEncoder"; }
  // position_embedding: add sinusoidal_positions of the (unscaled) input to the scaled input, queries and
  // keys/values alike (MMSA's MULT leaves it off; GLoMo's encoders turn it on).
  MultTransformerEncoder(int64_t embed_dim, int64_t num_heads, int64_t layers, float attn_dropout,
                         float relu_dropout, float res_dropout, float embed_dropout, bool attn_mask,
                         bool position_embedding = false);

  // x_in [B, Lq, E]; source [B, Lk, E] for cross-modal attention (queries from x_in, keys and values from
  // source), undefined for self-attention. Returns [B, Lq, E], or [B, 1, E] (the last position) when
  // last_only: MulT reads only the last step of its self-attention encoders, so their last layer computes
  // one query row instead of Lq (exactly the same numbers).
  Tensor forward(const Tensor& x_in, const Tensor& source = Tensor(), bool last_only = false);

  int64_t embed_dim;
  float embed_dropout;
  bool attn_mask, position_embedding;
  std::shared_ptr<ModuleList<MultTransformerEncoderLayer>> layers;
  Tensor version;  // buffer [1] = 2 (fairseq's format version; in MMSA's state dict)
  std::shared_ptr<LayerNorm> layer_norm;
};

}  // namespace msmix
