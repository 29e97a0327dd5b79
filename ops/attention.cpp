#include "ops/attention.h"

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/profile.h"
#include "engine/random.h"
#include "ops/cpu/attention.h"
#include "ops/cuda/kernels.h"

namespace msmix {

Tensor fused_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads, float scale,
                       const Tensor& attn_mask, const Tensor& key_padding_mask, float dropout_p, bool training,
                       Generator& gen) {
  MSMIX_OP_RANGE("fused_attention");
  MSMIX_CHECK(q.defined() && k.defined() && v.defined(), "fused_attention: undefined q, k or v");
  MSMIX_CHECK(q.dim() == 3 && k.dim() == 3 && k.shape() == v.shape() && q.size(0) == k.size(0) &&
                  q.size(2) == k.size(2),
              "fused_attention: expected q [B, L, E] and k, v [B, S, E], got q {}, k {}, v {}", describe(q),
              describe(k), describe(v));
  const int64_t B = q.size(0), L = q.size(1), S = k.size(1), E = q.size(2);
  MSMIX_CHECK(heads > 0 && E % heads == 0, "fused_attention: E = {} is not a multiple of {} heads (q {})", E, heads,
              describe(q));
  MSMIX_CHECK(dropout_p >= 0 && dropout_p <= 1, "fused_attention: dropout must be in [0, 1], got {}", dropout_p);
  const bool per_head = attn_mask.defined() && attn_mask.dim() == 3;
  if (attn_mask.defined())
    MSMIX_CHECK(attn_mask.shape() == Shape({L, S}) || attn_mask.shape() == Shape({B * heads, L, S}),
                "fused_attention: attn_mask must be [L, S] = [{}, {}] or [B * heads, L, S] = [{}, {}, {}], got {}", L,
                S, B * heads, L, S, describe(attn_mask));
  if (key_padding_mask.defined())
    MSMIX_CHECK(key_padding_mask.shape() == Shape({B, S}),
                "fused_attention: key_padding_mask must be [B, S] = [{}, {}], got {}", B, S,
                describe(key_padding_mask));
  MSMIX_CHECK(!attn_mask.requires_grad() && !key_padding_mask.requires_grad(),
              "fused_attention: masks get no grad; detach them (attn_mask {})",
              attn_mask.defined() ? describe(attn_mask) : "undefined");
  const Device dev = common_device("fused_attention", {&q, &k, &v, &attn_mask, &key_padding_mask});
  if (dev.is_cuda())  // before the generator moves: a refused call changes nothing
    MSMIX_CHECK(E / heads <= cuda::kAttentionMaxHeadDim,
                "fused_attention: head width {} (q {}, {} heads) is above the CUDA kernel's {}", E / heads,
                describe(q), heads, cuda::kAttentionMaxHeadDim);

  cpu::AttentionDims dims{B, heads, L, S, E / heads};
  cpu::AttentionArgs args;
  args.q = q.data(), args.k = k.data(), args.v = v.data();
  args.attn_mask = attn_mask.defined() ? attn_mask.data() : nullptr;
  args.mask_per_head = per_head;
  args.key_padding = key_padding_mask.defined() ? key_padding_mask.data() : nullptr;
  args.scale = scale;
  args.dropout = training && dropout_p > 0;
  if (args.dropout) {  // as dropout(): one take, p == 1 drops everything with scale 0
    args.dropout_p = dropout_p;
    args.dropout_scale = dropout_p < 1 ? 1.0f / (1.0f - dropout_p) : 0.0f;
    args.seed = gen.seed;
    const KernelOffset drawn = kernel_offset(gen, gen.take(Generator::uniform_blocks(uint64_t(B * heads * L * S))),
                                             dev.is_cuda(), "fused_attention");
    args.offset = drawn.offset, args.offset_base = drawn.base;  // a graph step's base: read on the device
  }
  Tensor out = Tensor::empty({B, L, E}, dev);
  Tensor stats = Tensor::empty({B * heads, L, 2}, dev);  // row max, 1 / sum of exps
  const bool grad = any_requires_grad({&q, &k, &v});
  // On the GPU, a forward with dropout that a backward follows writes its decisions down (a bit per pair,
  // uint32 words in a float tensor's storage), so the backward draws no Philox again.
  Tensor dropout_bits;
  if (dev.is_cuda() && args.dropout && grad) {
    dropout_bits = Tensor::empty({cuda::attention_dropout_words(dims)}, dev);
    args.dropout_bits = reinterpret_cast<uint32_t*>(dropout_bits.data());
  }
  if (dev.is_cuda())
    cuda::attention_forward(args, dims, out.data(), stats.data());  // head widths up to 64, else it throws
  else
    cpu::attention_forward(args, dims, out.data(), stats.data());

  if (grad) {
    Tensor q_ = q.detach(), k_ = k.detach(), v_ = v.detach(), out_ = out.detach();
    Tensor mask_ = attn_mask.defined() ? attn_mask.detach() : Tensor();
    Tensor pad_ = key_padding_mask.defined() ? key_padding_mask.detach() : Tensor();
    record(out, "fused_attention", {q, k, v},
           [q_, k_, v_, out_, mask_, pad_, stats, dropout_bits, args, dims](const Tensor& g,
                                                                             const std::vector<bool>& needs) {
             Tensor gq = needs[0] ? Tensor::empty(q_.shape(), g.device()) : Tensor();
             Tensor gk = needs[1] ? Tensor::empty(k_.shape(), g.device()) : Tensor();
             Tensor gv = needs[2] ? Tensor::empty(v_.shape(), g.device()) : Tensor();
             cpu::AttentionArgs a = args;  // the saved tensors' pointers (the same storage as at forward)
             a.q = q_.data(), a.k = k_.data(), a.v = v_.data();
             a.dropout_bits = dropout_bits.defined() ? reinterpret_cast<uint32_t*>(dropout_bits.data()) : nullptr;
             a.attn_mask = mask_.defined() ? mask_.data() : nullptr;
             a.key_padding = pad_.defined() ? pad_.data() : nullptr;
             a.out = out_.data();
             float* gq_ptr = needs[0] ? gq.data() : nullptr;
             float* gk_ptr = needs[1] ? gk.data() : nullptr;
             float* gv_ptr = needs[2] ? gv.data() : nullptr;
             if (g.is_cuda())
               cuda::attention_backward(a, dims, stats.data(), g.data(), gq_ptr, gk_ptr, gv_ptr);
             else
               cpu::attention_backward(a, dims, stats.data(), g.data(), gq_ptr, gk_ptr, gv_ptr);
             return Grads{gq, gk, gv};
           });
  }
  return out;
}

}  // namespace msmix
