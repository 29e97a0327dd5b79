// CPU kernels of the fused multi-head attention core (ops/attention.h). Heads sit side by side in the
// feature dim: head h of q [B, L, E] is columns [h D, (h + 1) D), E = H D. Per (batch, head) and block of
// query rows, the kernels compute scores, softmax and dropout for those rows only, use them and drop them:
// no [B, H, L, S] tensor is ever stored. The backward recomputes the probabilities from q, k and the row
// statistics the forward saved (the row max and 1 / sum of exps), so they are the forward's bits.
#pragma once
#include <cstdint>

namespace msmix::cpu {

struct AttentionDims {
  int64_t B, H, L, S, D;  // batch, heads, query rows, keys, head width
};

struct AttentionArgs {
  const float* q;  // [B, L, H D]
  const float* k;  // [B, S, H D]
  const float* v;  // [B, S, H D]
  const float* attn_mask = nullptr;    // additive [L, S], or [B H, L, S] when mask_per_head; or null
  bool mask_per_head = false;
  const float* key_padding = nullptr;  // [B, S], nonzero = padding (-inf); or null
  float scale = 1;                     // q is multiplied by it before the dot products
  // Dropout on the probabilities: element ((b H + h) L + l) S + s of the stream (seed, offset), as
  // ops/cpu/dropout.h's dropout_apply over a [B, H, L, S] tensor.
  bool dropout = false;
  float dropout_p = 0, dropout_scale = 1;
  uint64_t seed = 0, offset = 0;
  const uint64_t* offset_base = nullptr;  // GPU only: a captured graph step's device word added to offset
  const float* out = nullptr;  // GPU backward only: the forward's output [B, L, H D] (softmax's row term dO . O)
  // GPU only, with dropout: the forward writes each kept / dropped decision here and the backward reads it
  // instead of drawing Philox again (ops/cuda/attention_block.h's layout; cuda::attention_dropout_words
  // words); null: the backward draws again.
  uint32_t* dropout_bits = nullptr;
};

// out [B, L, H D]; stats [B H, L, 2] (row max, 1 / sum of exps) for the backward.
void attention_forward(const AttentionArgs& a, const AttentionDims& d, float* out, float* stats);

// From gout [B, L, H D]: gq [B, L, H D], gk and gv [B, S, H D]; a null grad pointer is skipped.
void attention_backward(const AttentionArgs& a, const AttentionDims& d, const float* stats, const float* gout,
                        float* gq, float* gk, float* gv);

// The kernels exist in three builds (AVX-512F, AVX2 + FMA, baseline SSE2); the widest the CPU runs is used.
// Tests switch to each supported one in turn (not while kernels run).
enum class AttentionBuild { baseline, avx2, avx512 };
bool attention_build_supported(AttentionBuild b);
const char* attention_build_name(AttentionBuild b);
AttentionBuild attention_build();
void set_attention_build(AttentionBuild b);  // throws when the CPU lacks it

}  // namespace msmix::cpu
