// The multi-head attention core as one op (CPU: ops/cpu/attention.cpp; CUDA: ops/cuda/attention.cu, head widths
// up to 64): what MultiheadAttention (models/attention.h) computes between
// its input projections and out_proj, without the [B, heads, L, S] score and probability tensors.
//   q [B, L, E], k and v [B, S, E], heads side by side (head h = columns [h D, (h + 1) D), D = E / heads):
//   P[b, h] = dropout(softmax((q_h * scale) k_h^T + attn_mask, padded keys at -inf)),  out[b, :, h] = P[b, h] v_h
// returns out [B, L, E]. attn_mask: additive [L, S] or [B * heads, L, S], or undefined; key_padding_mask
// [B, S], nonzero = padding, or undefined (masks get no grad). A query whose keys are all masked gets NaN,
// as in PyTorch. Dropout (training and p > 0) draws B * heads * L * S uniforms from `gen` in one take and
// drops element ((b * heads + h) * L + l) * S + s as dropout() would on the [B, heads, L, S] tensor: the
// composite (split heads, matmul, add, masked_fill, softmax, dropout, matmul, merge heads) gives the same
// numbers up to float rounding, and the generator moves on by the same amount.
// Memory and time: the probabilities are computed a block of query rows at a time per (batch, head) and
// dropped; backward recomputes them from q, k and per-row softmax statistics ([B * heads, L, 2] floats).
#pragma once
#include "engine/random.h"
#include "engine/tensor.h"

namespace msmix {

Tensor fused_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads, float scale,
                       const Tensor& attn_mask, const Tensor& key_padding_mask, float dropout_p, bool training,
                       Generator& gen);

}  // namespace msmix
