// TransformerEncoderLayer as torch.nn.TransformerEncoderLayer: self-attention and a feed-forward block, each
// with a residual connection and LayerNorm, either after the residual (post-norm, the default) or on the
// block's input (pre-norm, norm_first). Parameter names as PyTorch: self_attn.*, linear1, linear2, norm1,
// norm2 (dropout, dropout1, dropout2 are registered children without parameters).
#pragma once
#include <memory>
#include <string>

#include "models/attention.h"
#include "models/dropout.h"
#include "models/layer_norm.h"
#include "models/linear.h"
#include "models/module.h"

namespace msmix {

class TransformerEncoderLayer : public Module {
 public:
  const char* kind() const override { return "TransformerEncoderLayer"; }
  // activation: "relu" or "gelu" (exact erf form).
  TransformerEncoderLayer(int64_t d_model, int64_t nhead, int64_t dim_feedforward = 2048, float dropout = 0.1f,
                          const std::string& activation = "relu", float layer_norm_eps = 1e-5f,
                          bool batch_first = true, bool norm_first = false);

  // src [B, T, d_model] (batch_first) or [T, B, d_model]; src_mask additive [T, T] (or [B * nhead, T, T]);
  // src_key_padding_mask [B, T], nonzero = padding. Masks may be undefined.
  Tensor forward(const Tensor& src, const Tensor& src_mask = Tensor(), const Tensor& src_key_padding_mask = Tensor());

  std::string activation;
  bool norm_first;
  std::shared_ptr<MultiheadAttention> self_attn;
  std::shared_ptr<Linear> linear1, linear2;
  std::shared_ptr<Dropout> dropout, dropout1, dropout2;
  std::shared_ptr<LayerNorm> norm1, norm2;

 private:
  Tensor self_attention_block(const Tensor& x, const Tensor& mask, const Tensor& key_padding_mask);
  Tensor feed_forward_block(const Tensor& x);
};

}  // namespace msmix
