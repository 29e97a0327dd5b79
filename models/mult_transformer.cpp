#include "models/mult_transformer.h"

#include <cmath>
#include <cstdlib>
#include <limits>

#include "engine/error.h"
#include "models/init.h"
#include "ops/ops.h"

namespace msmix {

namespace {

// x [B, L, E] -> its last position, [B, 1, E].
Tensor last_step(const Tensor& x) { return slice(x, 1, x.size(1) - 1, x.size(1)); }

}  // namespace

Tensor sinusoidal_positions(const Tensor& x) {
  MSMIX_CHECK(x.defined() && x.dim() == 3 && x.size(2) >= 4, "sinusoidal_positions: expected [B, L, E >= 4], got {}",
              x.defined() ? describe(x) : "undefined");
  const int64_t L = x.size(1), E = x.size(2), half = E / 2;
  // In float32 as fairseq computes it: the frequencies, then position times frequency, then sin / cos.
  const float step = float(std::log(10000.0) / double(half - 1));
  std::vector<float> table(size_t(L * E), 0.0f);  // row t: position t + 1
  for (int64_t t = 0; t < L; ++t)
    for (int64_t j = 0; j < half; ++j) {
      const float angle = float(t + 1) * std::exp(float(j) * -step);
      table[size_t(t * E + j)] = std::sin(angle);
      table[size_t(t * E + half + j)] = std::cos(angle);
    }
  NoGradGuard no_grad;
  Tensor first = slice(x.detach(), 2, 0, 1);                                              // [B, L, 1]
  Tensor nonzero = rsub(1.0f, eq(first, Tensor::zeros({1}, x.device())));                  // 1 where it is non-zero
  return mul(nonzero, Tensor::from_vector(table, {L, E}, x.device()));                      // [B, L, E]
}

Tensor mult_future_mask(int64_t Lq, int64_t Lk, Device device) {
  MSMIX_CHECK(Lq > 0 && Lk > 0, "mult_future_mask: lengths must be positive, got Lq={} Lk={}", Lq, Lk);
  const int64_t offset = 1 + std::llabs(Lk - Lq);  // pair (i, j) is masked when j - i >= offset
  if (Lk - 1 < offset) return Tensor();           // even row 0 keeps every key
  Tensor mask = Tensor::zeros({Lq, Lk});
  float* m = mask.data();
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < Lq; ++i)
    for (int64_t j = i + offset; j < Lk; ++j) m[i * Lk + j] = neg_inf;
  return device.is_cuda() ? mask.to(device) : mask;
}

MultTransformerEncoderLayer::MultTransformerEncoderLayer(int64_t embed_dim_, int64_t num_heads, float attn_dropout,
                                                         float relu_dropout_, float res_dropout_)
    : embed_dim(embed_dim_), relu_dropout(relu_dropout_), res_dropout(res_dropout_) {
  // MMSA's registration order: self_attn, fc1, fc2, layer_norms.
  self_attn = register_module("self_attn", std::make_shared<MultiheadAttention>(embed_dim, num_heads, attn_dropout));
  init::xavier_uniform_(self_attn->out_proj->weight);  // MMSA (fairseq) re-inits out_proj; PyTorch does not
  fc1 = register_module("fc1", std::make_shared<Linear>(embed_dim, 4 * embed_dim));
  fc2 = register_module("fc2", std::make_shared<Linear>(4 * embed_dim, embed_dim));
  for (Linear* fc : {fc1.get(), fc2.get()}) {
    init::xavier_uniform_(fc->weight);
    init::zeros_(fc->bias);
  }
  layer_norms = register_module("layer_norms", std::make_shared<ModuleList<LayerNorm>>());
  layer_norms->append(std::make_shared<LayerNorm>(embed_dim));
  layer_norms->append(std::make_shared<LayerNorm>(embed_dim));
}

Tensor MultTransformerEncoderLayer::forward(const Tensor& x, const Tensor& x_k, const Tensor& x_v, const Tensor& mask,
                                            bool last_only) {
  ProfileRange range(range_name());
  MSMIX_CHECK(x.defined() && x.dim() == 3 && x.size(2) == embed_dim,
              "MulT encoder layer: expected x [B, L, {}], got {}", embed_dim, x.defined() ? describe(x) : "undefined");
  MSMIX_CHECK(x_k.defined() == x_v.defined(), "MulT encoder layer: keys and values must both be given or both not");
  MSMIX_CHECK(!(last_only && mask.defined()),
              "MulT encoder layer: last_only takes no mask (its last row masks nothing)");
  LayerNorm& ln0 = *(*layer_norms)[0];
  Tensor q = ln0.forward(x);  // [B, Lq, E]
  Tensor k = q, v = q;        // self-attention: MultiheadAttention fuses the q, k, v GEMMs
  if (x_k.defined()) {
    k = ln0.forward(x_k);
    v = x_v.same(x_k) ? k : ln0.forward(x_v);
  }
  Tensor residual = x;
  if (last_only) {  // one query row; keys and values keep every position
    q = last_step(q);
    residual = last_step(x);
  }
  Tensor h = add(residual, dropout(self_attn->forward(q, k, v, Tensor(), mask).out, res_dropout, is_training()));
  Tensor f = relu(fc1->forward((*layer_norms)[1]->forward(h)));
  f = fc2->forward(dropout(f, relu_dropout, is_training()));
  return add(h, dropout(f, res_dropout, is_training()));
}

MultTransformerEncoder::MultTransformerEncoder(int64_t embed_dim_, int64_t num_heads, int64_t num_layers,
                                               float attn_dropout, float relu_dropout, float res_dropout,
                                               float embed_dropout_, bool attn_mask_, bool position_embedding_)
    : embed_dim(embed_dim_), embed_dropout(embed_dropout_), attn_mask(attn_mask_),
      position_embedding(position_embedding_) {
  MSMIX_CHECK(!position_embedding || embed_dim >= 4, "MulT encoder: sinusoidal positions need a width >= 4, got {}",
              embed_dim);
  MSMIX_CHECK(num_layers >= 0, "MulT encoder: layers must be >= 0, got {}", num_layers);
  for (float p : {attn_dropout, relu_dropout, res_dropout, embed_dropout})
    MSMIX_CHECK(p >= 0 && p < 1, "MulT encoder: dropout probabilities must be in [0, 1), got {}", p);
  layers = register_module("layers", std::make_shared<ModuleList<MultTransformerEncoderLayer>>());
  for (int64_t i = 0; i < num_layers; ++i)
    layers->append(std::make_shared<MultTransformerEncoderLayer>(embed_dim, num_heads, attn_dropout, relu_dropout,
                                                                 res_dropout));
  version = register_buffer("version", Tensor::full({1}, 2.0f));
  layer_norm = register_module("layer_norm", std::make_shared<LayerNorm>(embed_dim));
}

Tensor MultTransformerEncoder::forward(const Tensor& x_in, const Tensor& source, bool last_only) {
  ProfileRange range(range_name());
  MSMIX_CHECK(x_in.defined() && x_in.dim() == 3 && x_in.size(2) == embed_dim && x_in.size(1) > 0,
              "MulT encoder: expected queries [B, L > 0, {}], got {}", embed_dim,
              x_in.defined() ? describe(x_in) : "undefined");
  if (source.defined())
    MSMIX_CHECK(
        source.dim() == 3 && source.size(0) == x_in.size(0) && source.size(2) == embed_dim && source.size(1) > 0,
        "MulT encoder: expected keys/values [{}, L > 0, {}] for queries {}, got {}", x_in.size(0), embed_dim,
        describe(x_in), describe(source));
  const float scale = std::sqrt(float(embed_dim));
  const bool drop = embed_dropout > 0 && is_training();
  auto embed = [&](const Tensor& in) {
    Tensor scaled = mul(in, scale);
    return position_embedding ? add(scaled, sinusoidal_positions(in)) : scaled;
  };
  Tensor x = dropout(embed(x_in), embed_dropout, is_training());
  Tensor x_k, x_v;
  if (source.defined()) {
    // MMSA scales and drops the keys and the values separately: two masks in training, one tensor otherwise.
    Tensor scaled = embed(source);
    x_k = dropout(scaled, embed_dropout, is_training());
    x_v = drop ? dropout(scaled, embed_dropout, is_training()) : x_k;
  }
  const int64_t Lq = x.size(1), Lk = source.defined() ? source.size(1) : Lq;
  Tensor mask = attn_mask ? mult_future_mask(Lq, Lk, x.device()) : Tensor();
  const size_t n = layers->size();
  for (size_t i = 0; i < n; ++i) {
    const bool last = last_only && i + 1 == n;
    x = (*layers)[i]->forward(x, x_k, x_v, last ? Tensor() : mask, last);
  }
  if (last_only && n == 0) x = last_step(x);
  return layer_norm->forward(x);
}

}  // namespace msmix
