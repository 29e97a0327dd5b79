// MultiheadAttention as torch.nn.MultiheadAttention (kdim = vdim = embed_dim): the same parameter names,
// shapes and initialisation, so PyTorch/MMSA weights load one-to-one.
//   out = softmax(q k^T / sqrt(head_dim) + attn_mask, key padding at -inf) v, per head, then out_proj.
// Query and key/value may differ in length (cross-modal attention: L queries attend over S keys).
#pragma once
#include <memory>

#include "models/linear.h"
#include "models/module.h"

namespace msmix {

// On the GPU, MultiheadAttention runs the fused attention kernel only with MSMIX_CUDA_FUSED_ATTENTION=1 (read
// once): the composite path (matmul, softmax, matmul) measured faster in MulT's training step on an H200.
bool cuda_fused_attention_enabled();

struct AttentionOutput {
  Tensor out;      // [B, L, E] (batch_first) or [L, B, E]
  Tensor weights;  // [B, L, S], averaged over heads (after attention dropout, as PyTorch); only when asked
};

// The attention between the input projections and the output projection, heads side by side:
//   q [B, L, E], k and v [B, S, E] (head h = columns [h E/heads, (h + 1) E/heads))
//   -> out [B, L, E] = per head dropout(softmax(scale q_h k_h^T + attn_mask, padded keys at -inf)) v_h
// Masks as MultiheadAttention::forward takes them (either may be undefined). On the CPU it runs the fused op
// (ops/attention.h); on the GPU the composite (matmul, softmax, matmul), or the fused kernel under
// MSMIX_CUDA_FUSED_ATTENTION=1 with E / heads <= 64. need_weights forces the composite and fills `weights`.
AttentionOutput attention_heads(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads, float scale,
                                const Tensor& attn_mask, const Tensor& key_padding_mask, float dropout_p,
                                bool training, bool need_weights = false);

class MultiheadAttention : public Module {
 public:
  const char* kind() const override { return "MultiheadAttention"; }
  // in_proj_weight [3E, E] ~ xavier_uniform, in_proj_bias [3E] = 0, out_proj (Linear E -> E) with its
  // default weight init and a zero bias. bias = false registers neither bias.
  MultiheadAttention(int64_t embed_dim, int64_t num_heads, float dropout = 0, bool bias = true,
                     bool batch_first = true);

  // query [B, L, E], key and value [B, S, E] (batch_first; else [L, B, E] and [S, B, E]).
  // key_padding_mask [B, S]: nonzero = that key is padding, ignored. attn_mask: additive float [L, S] or
  // [B * num_heads, L, S] (-inf forbids a pair). Either mask may be undefined. A query whose keys are all
  // masked gets NaN, as in PyTorch.
  AttentionOutput forward(const Tensor& query, const Tensor& key, const Tensor& value,
                          const Tensor& key_padding_mask = Tensor(), const Tensor& attn_mask = Tensor(),
                          bool need_weights = false);

  int64_t embed_dim, num_heads, head_dim;
  float dropout;
  bool batch_first;
  Tensor in_proj_weight, in_proj_bias;  // in_proj_bias undefined without bias
  std::shared_ptr<Linear> out_proj;
};

}  // namespace msmix
