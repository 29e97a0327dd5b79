#include "msmix/intensity_predictor.h"

#include <cmath>

#include "engine/error.h"
#include "ops/ops.h"

namespace msmix {

IntensityPredictor::IntensityPredictor(int64_t input_dim_, int64_t num_heads_)
    : input_dim(input_dim_), num_heads(num_heads_) {
  MSMIX_CHECK(input_dim > 0 && num_heads > 0, "IntensityPredictor: input_dim and num_heads must be > 0, got {} and {}",
              input_dim, num_heads);
  reduced_dim = input_dim > kReduceAbove ? kReducedDim : input_dim;
  padded_dim = (reduced_dim + num_heads - 1) / num_heads * num_heads;
  head_dim = padded_dim / num_heads;
  // Registration order as PyTorch's named_parameters() lists the released module.
  if (input_dim > kReduceAbove)
    dimension_reducer = register_module("dimension_reducer", std::make_shared<Linear>(input_dim, kReducedDim));
  qkv_proj = register_module("qkv_proj", std::make_shared<Linear>(padded_dim, 3 * padded_dim));
  output_proj = register_module("output_proj", std::make_shared<Linear>(padded_dim, 1));
  norm1 = register_module("norm1", std::make_shared<LayerNorm>(padded_dim));
}

Tensor IntensityPredictor::forward(const Tensor& input) {
  ProfileRange range(range_name());
  MSMIX_CHECK(input.defined() && (input.dim() == 2 || input.dim() == 3) && input.size(-1) == input_dim,
              "IntensityPredictor({}): expected [B, {}] or [B, T, {}], got {}", input_dim, input_dim, input_dim,
              input.defined() ? describe(input) : "undefined");
  MSMIX_CHECK(input.size(0) > 0 && (input.dim() == 2 || input.size(1) > 0),
              "IntensityPredictor({}): empty batch or sequence {}", input_dim, describe(input));
  Tensor x = input.dim() == 2 ? unsqueeze(input, 1) : input;  // [B, T, d]; a vector is one token
  const int64_t B = x.size(0), T = x.size(1), H = num_heads, D = padded_dim;
  if (dimension_reducer) x = dimension_reducer->forward(x);  // [B, T, 1024]
  if (padded_dim > reduced_dim)                              // zero columns up to [B, T, D]
    x = concat({x, Tensor::zeros({B, T, padded_dim - reduced_dim}, x.device())}, 2);

  std::vector<Tensor> qkv = chunk(qkv_proj->forward(x), 3, 2);  // 3 x [B, T, D]
  auto heads = [&](const Tensor& t) { return permute(reshape(t, {B, T, H, head_dim}), {0, 2, 1, 3}); };
  Tensor q = heads(qkv[0]), k = heads(qkv[1]), v = heads(qkv[2]);  // [B, H, T, hd]
  Tensor scores = mul(matmul(q, k, false, true), 1.0f / std::sqrt(float(head_dim)));  // [B, H, T, T]
  Tensor attn = matmul(softmax(scores), v);                                            // [B, H, T, hd]
  attn = reshape(permute(attn, {0, 2, 1, 3}), {B, T, D});                              // heads concatenated

  Tensor h = mean(norm1->forward(add(x, attn)), {1});          // [B, D]
  Tensor out = mul(tanh(output_proj->forward(h)), kRange);      // [B, 1]
  return reshape(out, {B});
}

}  // namespace msmix
