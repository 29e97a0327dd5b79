// fused_attention against the composite it replaces (split heads, matmul, add, masked_fill, softmax,
// dropout, matmul, merge heads: ops the other suites check against PyTorch), forward and grads, with masks,
// padding and dropout; finite differences; all-masked rows; errors.
#include <cmath>
#include <cstdlib>
#include <limits>

#include "ops/attention.h"
#include "ops/cpu/attention.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

const float kInf = std::numeric_limits<float>::infinity();

Tensor composite(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads, float scale, const Tensor& mask,
                 const Tensor& pad, float p, bool training, Generator& gen) {
  const int64_t B = q.size(0), L = q.size(1), S = k.size(1), E = q.size(2), D = E / heads;
  auto split = [&](const Tensor& x) { return permute(reshape(x, {B, x.size(1), heads, D}), {0, 2, 1, 3}); };
  Tensor scores = matmul(mul(split(q), scale), split(k), false, true);  // [B, heads, L, S]
  if (mask.defined()) scores = add(scores, mask.dim() == 2 ? mask : reshape(mask, {B, heads, L, S}));
  if (pad.defined()) scores = masked_fill(scores, reshape(pad, {B, 1, 1, S}), -kInf);
  Tensor attn = softmax(scores);
  if (training && p > 0) attn = dropout(attn, p, true, gen);
  return reshape(permute(matmul(attn, split(v)), {0, 2, 1, 3}), {B, L, E});
}

struct Case {
  int64_t B, heads, D, L, S;
  bool mask, per_head_mask, pad;
  float p;
  bool future = false;  // MMSA's MulT mask instead of a random one: -inf where j >= i + 1 + |S - L|
};

// Runs both on fresh leaves, compares the outputs, the grads of q, k, v under random output weights, and
// the generators' offsets afterwards.
void compare(const Case& c, double rtol = 2e-5, double atol = 2e-6) {
  CAPTURE(c.B);
  CAPTURE(c.heads);
  CAPTURE(c.D);
  CAPTURE(c.L);
  CAPTURE(c.S);
  CAPTURE(c.p);
  const int64_t E = c.heads * c.D;
  const float scale = 1.0f / std::sqrt(float(c.D));
  Tensor mask, pad;
  if (c.mask) {
    Generator mg(5);
    // Finite values and some -inf (never a whole row: key 0 stays open).
    mask = Tensor::randn(c.per_head_mask ? Shape{c.B * c.heads, c.L, c.S} : Shape{c.L, c.S}, mg);
    float* m = mask.data();
    for (int64_t i = 0; i < mask.numel(); ++i)
      if (i % c.S != 0 && i % 3 == 1) m[i] = -kInf;
  }
  if (c.future) {
    mask = Tensor::zeros({c.L, c.S});
    const int64_t offset = 1 + std::llabs(c.S - c.L);
    for (int64_t i = 0; i < c.L; ++i)
      for (int64_t j = i + offset; j < c.S; ++j) mask.data()[i * c.S + j] = -kInf;
  }
  if (c.pad) {
    pad = Tensor::zeros({c.B, c.S});
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t s = c.S - 1 - b; s < c.S; ++s)
        if (s > 0) pad.data()[b * c.S + s] = 1;
  }
  Tensor qa = leaf({c.B, c.L, E}, 1), ka = leaf({c.B, c.S, E}, 2), va = leaf({c.B, c.S, E}, 3);
  Tensor qb = leaf({c.B, c.L, E}, 1), kb = leaf({c.B, c.S, E}, 2), vb = leaf({c.B, c.S, E}, 3);
  Generator ga(77), gb(77);
  ga.take(3), gb.take(3);
  Tensor fused = fused_attention(qa, ka, va, c.heads, scale, mask, pad, c.p, true, ga);
  Tensor ref = composite(qb, kb, vb, c.heads, scale, mask, pad, c.p, true, gb);
  CHECK(ga.offset == gb.offset);
  check_close(fused, ref, rtol, atol, "out");
  Generator wg(9);
  Tensor w = Tensor::randn(fused.shape(), wg);
  fused.backward(w);
  ref.backward(w);
  check_close(qa.grad(), qb.grad(), rtol * 5, atol * 5, "grad q");
  check_close(ka.grad(), kb.grad(), rtol * 5, atol * 5, "grad k");
  check_close(va.grad(), vb.grad(), rtol * 5, atol * 5, "grad v");
}

// Every case on the active kernel build.
void compare_all() {
  compare({2, 3, 4, 7, 11, false, false, false, 0.0f});
  compare({2, 3, 4, 7, 11, true, false, true, 0.0f});
  compare({2, 3, 4, 7, 11, true, true, false, 0.3f});
  compare({1, 1, 1, 1, 1, false, false, false, 0.0f});
  compare({3, 2, 5, 9, 9, true, false, true, 0.5f});
  // MulT's shapes in small: head width 5, long keys; S = 700 gives 11 query rows per block, so the row
  // blocks and their dropout slices (not aligned to Philox blocks) are crossed several times.
  compare({2, 2, 5, 40, 700, true, false, false, 0.2f}, 1e-4, 1e-5);
  compare({2, 2, 5, 700, 13, false, false, true, 0.3f}, 1e-4, 1e-5);
  // Masked suffixes of keys (rows stop early, row by row dropout slices, zero tails), with padding on top.
  compare({2, 2, 5, 40, 700, false, false, false, 0.2f, true}, 1e-4, 1e-5);
  compare({2, 3, 4, 300, 200, false, false, true, 0.3f, true}, 1e-4, 1e-5);
  compare({1, 2, 3, 64, 64, false, false, false, 0.0f, true}, 1e-4, 1e-5);
}

}  // namespace

TEST_CASE("fused_attention: equals the composite, forward and grads, with masks, padding and dropout") {
  const cpu::AttentionBuild saved = cpu::attention_build();
  using cpu::AttentionBuild;
  for (AttentionBuild build : {AttentionBuild::baseline, AttentionBuild::avx2, AttentionBuild::avx512}) {
    if (!cpu::attention_build_supported(build)) {
      MESSAGE("this CPU has no " << cpu::attention_build_name(build) << ": that build is not tested");
      continue;
    }
    CAPTURE(cpu::attention_build_name(build));
    cpu::set_attention_build(build);
    compare_all();
  }
  cpu::set_attention_build(saved);
}

TEST_CASE("fused_attention: eval and p = 0 draw nothing; p = 1 drops everything") {
  Tensor q = leaf({2, 3, 4}, 1), k = leaf({2, 5, 4}, 2), v = leaf({2, 5, 4}, 3);
  Generator gen(1);
  Tensor eval = fused_attention(q, k, v, 2, 0.5f, Tensor(), Tensor(), 0.5f, false, gen);
  Tensor p0 = fused_attention(q, k, v, 2, 0.5f, Tensor(), Tensor(), 0.0f, true, gen);
  CHECK(gen.offset == 0);
  check_close(eval, p0, 0, 0, "eval vs p = 0");
  Tensor all = fused_attention(q, k, v, 2, 0.5f, Tensor(), Tensor(), 1.0f, true, gen);
  CHECK(all.to_vector() == std::vector<float>(24, 0.0f));
  CHECK(gen.offset == Generator::uniform_blocks(2 * 2 * 3 * 5));
}

TEST_CASE("fused_attention: finite differences through masks, padding and a fixed dropout mask") {
  Tensor mask = Tensor::zeros({3, 4});
  mask.data()[3] = -kInf;  // row 0 never sees key 3
  mask.data()[5] = 0.7f;
  Tensor pad = Tensor::zeros({2, 4});
  pad.data()[4 + 2] = 1;
  check_gradients(
      [&](const std::vector<Tensor>& x) {
        Generator fixed(8);
        return fused_attention(x[0], x[1], x[2], 2, 0.6f, mask, pad, 0.25f, true, fixed);
      },
      {leaf({2, 3, 6}, 1), leaf({2, 4, 6}, 2), leaf({2, 4, 6}, 3)});
}

TEST_CASE("fused_attention: a query whose keys are all masked gets NaN, the others are finite") {
  Tensor q = leaf({1, 2, 2}, 1), k = leaf({1, 3, 2}, 2), v = leaf({1, 3, 2}, 3);
  Tensor mask = Tensor::zeros({2, 3});
  for (int s = 0; s < 3; ++s) mask.data()[3 + s] = -kInf;  // row 1: no key left
  Generator gen(1);
  std::vector<float> out = fused_attention(q, k, v, 1, 1.0f, mask, Tensor(), 0.0f, true, gen).to_vector();
  CHECK(std::isfinite(out[0]));
  CHECK(std::isfinite(out[1]));
  CHECK(std::isnan(out[2]));
  CHECK(std::isnan(out[3]));
}

TEST_CASE("fused_attention: a query with no open key stays NaN when dropout drops all its keys, as the composite") {
  // S = 3 leaves the row's last vector partly past S; S = 16 fills whole vectors at every width (the case
  // that once came out 0). p = 1 drops every key; the dropped NaN probabilities stay NaN (NaN * 0).
  for (int64_t S : {3, 16}) {
    CAPTURE(S);
    Tensor q = leaf({1, 2, 2}, 1), k = leaf({1, S, 2}, 2), v = leaf({1, S, 2}, 3);
    Tensor mask = Tensor::zeros({2, S});
    for (int64_t s = 0; s < S; ++s) mask.data()[S + s] = -kInf;  // row 1: no key left
    for (float p : {0.5f, 1.0f}) {
      CAPTURE(p);
      Generator g1(4), g2(4);
      std::vector<float> fused = fused_attention(q, k, v, 1, 1.0f, mask, Tensor(), p, true, g1).to_vector();
      std::vector<float> ref = composite(q, k, v, 1, 1.0f, mask, Tensor(), p, true, g2).to_vector();
      CHECK(std::isnan(fused[2]));
      CHECK(std::isnan(fused[3]));
      CHECK(std::isnan(ref[2]));
      CHECK(std::isnan(ref[3]));
      CHECK(std::isfinite(fused[0]));  // row 0 is open: finite (0 where p = 1)
    }
  }
}

TEST_CASE("fused_attention: errors name the op and the shapes") {
  Tensor q = Tensor::zeros({2, 3, 4}), k = Tensor::zeros({2, 5, 4});
  Generator gen(1);
  check_throws_with([&] { fused_attention(q, k, Tensor::zeros({2, 4, 4}), 2, 1, Tensor(), Tensor(), 0, true, gen); },
                    {"fused_attention", "[2, 3, 4]", "[2, 5, 4]", "[2, 4, 4]"});
  check_throws_with([&] { fused_attention(q, k, k, 3, 1, Tensor(), Tensor(), 0, true, gen); },
                    {"fused_attention", "3 heads"});
  check_throws_with([&] { fused_attention(q, k, k, 2, 1, Tensor::zeros({5, 3}), Tensor(), 0, true, gen); },
                    {"fused_attention", "attn_mask", "[3, 5]", "[5, 3]"});
  check_throws_with([&] { fused_attention(q, k, k, 2, 1, Tensor(), Tensor::zeros({2, 3}), 0, true, gen); },
                    {"fused_attention", "key_padding_mask", "[2, 5]"});
  check_throws_with([&] { fused_attention(q, k, k, 2, 1, Tensor(), Tensor(), 1.5f, true, gen); },
                    {"fused_attention", "1.5"});
}
