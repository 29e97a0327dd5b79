// MultiheadAttention and TransformerEncoderLayer: forward and backward against PyTorch 1.13
// (tests/golden/make_seq_golden.py: padding masks, an additive causal mask with -inf, cross-attention with
// Lq != Lk), PyTorch's parameter names and init, layouts, and errors.
#include <cmath>
#include <limits>

#include "models/attention.h"
#include "models/transformer.h"
#include "tests/golden/golden.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

Tensor input(const golden::Fixture& fx, const std::string& name) {
  Tensor t = fx[name];
  t.set_requires_grad(true);
  return t;
}

// The additive mask: attn_mask.finite, with -inf where attn_mask.neg_inf is set (JSON cannot hold -inf).
Tensor attn_mask(const golden::Fixture& fx) {
  if (!fx.has("attn_mask.finite")) return Tensor();
  Tensor finite = fx["attn_mask.finite"];
  return where(fx["attn_mask.neg_inf"], Tensor::full(finite.shape(), -std::numeric_limits<float>::infinity()), finite);
}

Tensor key_padding_mask(const golden::Fixture& fx) {
  return fx.has("key_padding_mask") ? fx["key_padding_mask"] : Tensor();
}

void check_grads(const std::string& case_name, const golden::Fixture& fx, const Module& module,
                 const std::vector<std::pair<std::string, Tensor>>& inputs) {
  for (const auto& [name, t] : inputs)
    check_close(t.grad(), fx["grad." + name], 1e-4, 1e-5, case_name + " grad." + name);
  for (const auto& [name, p] : module.named_parameters()) {
    REQUIRE_MESSAGE(p.grad().defined(), case_name << ": no grad for " << name);
    check_close(p.grad(), fx["grad." + name], 1e-4, 1e-5, case_name + " grad." + name);
  }
}

// roles: which fixture tensor plays query, key and value ("query" three times: self-attention).
void check_mha_golden(const std::string& case_name, int64_t E, int64_t heads, const std::string& key_name,
                      const std::string& value_name) {
  CAPTURE(case_name);
  golden::Fixture fx = golden::load("seq/" + case_name + ".json");
  MultiheadAttention mha(E, heads);
  mha.load_state_dict(fx.with_prefix("state."));
  std::vector<std::pair<std::string, Tensor>> inputs = {{"query", input(fx, "query")}};
  auto role = [&](const std::string& name) {
    for (const auto& [n, t] : inputs)
      if (n == name) return t;
    inputs.emplace_back(name, input(fx, name));
    return inputs.back().second;
  };
  Tensor query = inputs[0].second, key = role(key_name), value = role(value_name);
  AttentionOutput y = mha.forward(query, key, value, key_padding_mask(fx), attn_mask(fx), true);
  check_close(y.out, fx["out"], 1e-4, 1e-5, case_name + " out");
  check_close(y.weights, fx["weights"], 1e-4, 1e-5, case_name + " weights");
  add(sum(mul(y.out, fx["w.out"])), sum(mul(y.weights, fx["w.weights"]))).backward();
  check_grads(case_name, fx, mha, inputs);
}

void check_transformer_golden(const std::string& case_name, bool norm_first, const std::string& activation) {
  CAPTURE(case_name);
  golden::Fixture fx = golden::load("seq/" + case_name + ".json");
  TransformerEncoderLayer layer(8, 2, 16, 0.0f, activation, 1e-5f, true, norm_first);
  layer.load_state_dict(fx.with_prefix("state."));
  Tensor x = input(fx, "x");
  Tensor y = layer.forward(x, attn_mask(fx), key_padding_mask(fx));
  check_close(y, fx["out"], 1e-4, 1e-5, case_name + " out");
  y.backward(fx["w.out"]);
  check_grads(case_name, fx, layer, {{"x", x}});
}

}  // namespace

TEST_CASE("MultiheadAttention: matches PyTorch with padding, a causal -inf mask, and cross-attention") {
  check_mha_golden("mha_padding", 8, 2, "query", "query");
  check_mha_golden("mha_causal", 8, 2, "query", "query");
  check_mha_golden("mha_cross", 8, 4, "key", "value");                // L = 4 queries over S = 7 keys
  check_mha_golden("mha_cross_shared_kv", 6, 3, "key", "key");        // one memory as key and value
}

TEST_CASE("MultiheadAttention: names, init, layouts, weights") {
  manual_seed(3);
  MultiheadAttention mha(8, 2);
  CHECK(names(mha.named_parameters()) ==
        std::vector<std::string>{"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"});
  CHECK(mha.num_parameters() == 4 * 8 * 8 + 4 * 8);
  CHECK(mha.in_proj_weight.shape() == Shape{24, 8});
  for (float v : mha.in_proj_bias.to_vector()) CHECK(v == 0.0f);
  for (float v : mha.out_proj->bias.to_vector()) CHECK(v == 0.0f);
  float bound = std::sqrt(6.0f / (8 + 24)), hi = 0;  // xavier_uniform on [3E, E]
  for (float v : mha.in_proj_weight.to_vector()) hi = std::max(hi, std::fabs(v));
  CHECK(hi <= bound);
  CHECK(hi > 0.8f * bound);
  CHECK(MultiheadAttention(8, 2, 0, false).named_parameters().size() == 2);

  // sequence-first layout: the same numbers, transposed
  MultiheadAttention seq_first(8, 2, 0, true, false);
  seq_first.load_state_dict(mha.state_dict());
  Tensor q = Tensor::randn({2, 3, 8}), kv = Tensor::randn({2, 5, 8});
  AttentionOutput a = mha.forward(q, kv, kv, Tensor(), Tensor(), true);
  AttentionOutput b = seq_first.forward(transpose(q, 0, 1), transpose(kv, 0, 1), transpose(kv, 0, 1));
  check_close(transpose(b.out, 0, 1), a.out, 1e-5, 1e-6, "sequence-first");
  CHECK(!b.weights.defined());
  // head-averaged weights: rows of probabilities; a padded key gets none
  Tensor kpm = Tensor::from_vector({0, 0, 0, 1, 1, 0, 0, 0, 0, 0}, {2, 5});
  AttentionOutput c = mha.forward(q, kv, kv, kpm, Tensor(), true);
  CHECK(c.weights.shape() == Shape{2, 3, 5});
  check_close(sum(c.weights, {2}), Tensor::ones({2, 3}), 1e-5, 1e-6, "rows sum to 1");
  std::vector<float> w = c.weights.to_vector();
  for (int64_t l = 0; l < 3; ++l) CHECK(w[size_t(l * 5 + 3)] + w[size_t(l * 5 + 4)] == 0.0f);
  // a [B * heads, L, S] mask acts per batch item and head
  Tensor per_head = Tensor::zeros({4, 3, 5});
  check_close(mha.forward(q, kv, kv, Tensor(), per_head).out, a.out, 1e-6, 1e-7, "zero per-head mask");
}

TEST_CASE("MultiheadAttention: finite differences through the masks") {
  manual_seed(4);
  MultiheadAttention mha(4, 2);
  Tensor mask = Tensor::from_vector({0, -std::numeric_limits<float>::infinity(), 0.3f, 0, 0, -0.5f}, {2, 3});
  Tensor kpm = Tensor::from_vector({0, 0, 1, 0, 0, 0}, {2, 3});
  check_gradients([&](const std::vector<Tensor>& in) { return mha.forward(in[0], in[1], in[1], kpm, mask).out; },
                  {leaf({2, 2, 4}, 50), leaf({2, 3, 4}, 51)});
}

TEST_CASE("TransformerEncoderLayer: matches PyTorch post-norm (relu, padding) and pre-norm (gelu, causal)") {
  check_transformer_golden("transformer_post_norm", false, "relu");
  check_transformer_golden("transformer_pre_norm", true, "gelu");
}

TEST_CASE("TransformerEncoderLayer: names, dropout modes") {
  manual_seed(5);
  TransformerEncoderLayer layer(8, 2, 16, 0.3f);
  CHECK(names(layer.named_parameters()) ==
        std::vector<std::string>{"self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
                                 "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight",
                                 "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"});
  CHECK(layer.num_parameters() == (4 * 64 + 32) + (8 * 16 + 16) + (16 * 8 + 8) + 4 * 8);
  Tensor x = Tensor::randn({2, 4, 8});
  layer.eval();
  Tensor eval_out = layer.forward(x);
  check_close(layer.forward(x), eval_out, 0, 0, "eval is deterministic");
  layer.train();
  CHECK(layer.forward(x).to_vector() != eval_out.to_vector());
}

TEST_CASE("MultiheadAttention and TransformerEncoderLayer: errors") {
  check_throws_with([] { MultiheadAttention(10, 3); }, {"MultiheadAttention", "10", "num_heads 3"});
  MultiheadAttention mha(8, 2);
  Tensor q = Tensor::zeros({2, 3, 8}), kv = Tensor::zeros({2, 5, 8});
  check_throws_with(
      [&] {
        mha.forward(Tensor::zeros({2, 3, 6}), kv, kv);
      },
      {"MultiheadAttention", "[B, L, E]", "[2, 3, 6]"});
  check_throws_with([&] { mha.forward(Tensor::zeros({3, 8}), kv, kv); }, {"MultiheadAttention", "[3, 8]"});
  check_throws_with(
      [&] {
        mha.forward(q, kv, Tensor::zeros({2, 4, 8}));
      },
      {"MultiheadAttention", "[2, 5, 8]", "[2, 4, 8]"});
  check_throws_with([&] { mha.forward(q, Tensor::zeros({1, 5, 8}), Tensor::zeros({1, 5, 8})); },
                    {"MultiheadAttention", "batch"});
  check_throws_with([&] { mha.forward(q, kv, kv, Tensor::zeros({2, 3})); }, {"key_padding_mask", "[2, 5]", "[2, 3]"});
  check_throws_with(
      [&] {
        mha.forward(q, kv, kv, Tensor(), Tensor::zeros({5, 3}));
      },
      {"attn_mask", "[3, 5]", "[5, 3]"});
  check_throws_with([] { TransformerEncoderLayer(8, 2, 16, 0.1f, "tanh"); }, {"TransformerEncoderLayer", "'tanh'"});
  TransformerEncoderLayer layer(8, 2, 16);
  check_throws_with([&] { layer.forward(Tensor::zeros({2, 3, 4})); }, {"MultiheadAttention", "[2, 3, 4]"});
}
