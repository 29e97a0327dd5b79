#include "models/transformer.h"

#include "engine/error.h"
#include "ops/ops.h"

namespace msmix {

TransformerEncoderLayer::TransformerEncoderLayer(int64_t d_model, int64_t nhead, int64_t dim_feedforward,
                                                 float dropout_p, const std::string& activation_,
                                                 float layer_norm_eps, bool batch_first, bool norm_first_)
    : activation(activation_), norm_first(norm_first_) {
  MSMIX_CHECK(activation == "relu" || activation == "gelu",
              "TransformerEncoderLayer: activation must be 'relu' or 'gelu', got '{}'", activation);
  MSMIX_CHECK(dim_feedforward > 0, "TransformerEncoderLayer: dim_feedforward must be positive, got {}",
              dim_feedforward);
  // PyTorch's registration order, so named_parameters() lists the same names in the same order.
  self_attn = register_module("self_attn",
                              std::make_shared<MultiheadAttention>(d_model, nhead, dropout_p, true, batch_first));
  linear1 = register_module("linear1", std::make_shared<Linear>(d_model, dim_feedforward));
  dropout = register_module("dropout", std::make_shared<Dropout>(dropout_p));
  linear2 = register_module("linear2", std::make_shared<Linear>(dim_feedforward, d_model));
  norm1 = register_module("norm1", std::make_shared<LayerNorm>(d_model, layer_norm_eps));
  norm2 = register_module("norm2", std::make_shared<LayerNorm>(d_model, layer_norm_eps));
  dropout1 = register_module("dropout1", std::make_shared<Dropout>(dropout_p));
  dropout2 = register_module("dropout2", std::make_shared<Dropout>(dropout_p));
}

Tensor TransformerEncoderLayer::self_attention_block(const Tensor& x, const Tensor& mask,
                                                     const Tensor& key_padding_mask) {
  return dropout1->forward(self_attn->forward(x, x, x, key_padding_mask, mask).out);
}

Tensor TransformerEncoderLayer::feed_forward_block(const Tensor& x) {
  Tensor hidden = linear1->forward(x);
  hidden = activation == "gelu" ? gelu(hidden) : relu(hidden);
  return dropout2->forward(linear2->forward(dropout->forward(hidden)));
}

Tensor TransformerEncoderLayer::forward(const Tensor& src, const Tensor& src_mask, const Tensor& src_key_padding_mask) {
  ProfileRange range(range_name());
  MSMIX_CHECK(src.defined(), "TransformerEncoderLayer: undefined input");
  Tensor x = src;
  if (norm_first) {  // x + f(norm(x)): the residual path stays unnormalised
    x = add(x, self_attention_block(norm1->forward(x), src_mask, src_key_padding_mask));
    x = add(x, feed_forward_block(norm2->forward(x)));
  } else {  // norm(x + f(x))
    x = norm1->forward(add(x, self_attention_block(x, src_mask, src_key_padding_mask)));
    x = norm2->forward(add(x, feed_forward_block(x)));
  }
  return x;
}

}  // namespace msmix
