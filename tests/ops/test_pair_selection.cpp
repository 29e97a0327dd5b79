// MS-Mix's pair selection as an op (ops/pair_selection.h) on the CPU: the same pairs, statistics and generator
// position as the host-side selection it replaced (SampleSelector's candidates, then its shuffle with the
// generator), for normal batches, the fallback to the top 2B, ties and B = 1; its indices go into index ops
// unread (bounded_index); its inputs are checked. The GPU kernel: tests/ops/test_pair_selection_block.cpp
// (emulated, against cpu::select_pairs) and tests/cuda/test_cuda_index.cpp (on a GPU).
#include <cmath>

#include "engine/autograd.h"
#include "msmix/sample_selection.h"
#include "ops/cpu/pair_selection.h"
#include "ops/ops.h"
#include "ops/pair_selection.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

// A symmetric [B, B] similarity with a unit diagonal; `levels` > 0 rounds the entries to that many steps
// (ties), as averaged cosines of clustered representations give.
Tensor similarity(int64_t B, uint64_t seed, int levels = 0) {
  std::vector<float> v = leaf({B, B}, seed).to_vector();
  std::vector<float> s(size_t(B * B));
  for (int64_t i = 0; i < B; ++i)
    for (int64_t j = 0; j < B; ++j) {
      float x = std::tanh(v[size_t(std::min(i, j) * B + std::max(i, j))]);
      if (levels > 0) x = std::round(x * float(levels)) / float(levels);
      s[size_t(i * B + j)] = i == j ? 1.0f : x;
    }
  return Tensor::from_vector(s, {B, B});
}

}  // namespace

TEST_CASE("pair selection: the op gives the host selection's pairs, statistics and generator position") {
  struct Case {
    int64_t B;
    float delta;
    int levels;
  };
  const Case cases[] = {{2, 0.4f, 0},  {3, 0.4f, 0},   {5, 0.4f, 0},  {16, 0.4f, 0}, {16, 0.95f, 0}, {16, 1.0f, 0},
                        {33, 0.4f, 4}, {33, 1.0f, 3}, {64, 0.0f, 0}, {64, -1.0f, 0}, {2, 1.0f, 0},  {7, 0.9f, 1}};
  uint64_t seed = 4100;
  int fallbacks = 0, normal = 0;
  for (const Case& c : cases) {
    CAPTURE(c.B);
    CAPTURE(c.delta);
    CAPTURE(c.levels);
    const Tensor s = similarity(c.B, seed++, c.levels);
    SampleSelector selector(c.delta);
    Generator host_gen(seed), op_gen(seed);
    SelectionStats expected;
    const std::vector<MixPair> pairs = selector.select(SampleSelector::normalize_similarity(s), host_gen, &expected);
    const SelectedPairs p = select_pairs(s, c.delta, selection_draws(c.B, op_gen, Device::cpu()));
    const std::vector<float> i = p.index_i.to_vector(), j = p.index_j.to_vector();
    REQUIRE(i.size() == pairs.size());
    for (size_t k = 0; k < pairs.size(); ++k) {
      CHECK(int64_t(i[k]) == pairs[k].first);
      CHECK(int64_t(j[k]) == pairs[k].second);
      CHECK(pairs[k].first != pairs[k].second);  // never a self-pair for B >= 2
    }
    const SelectionStats got = selection_stats(p.stats.to_vector(), c.B);
    CHECK(got.needed == c.B);
    CHECK(got.above_delta == expected.above_delta);
    CHECK(got.fallback == expected.fallback);
    CHECK(got.pool == expected.pool);
    CHECK(got.pair_similarity == doctest::Approx(expected.pair_similarity).epsilon(1e-6));
    CHECK(op_gen.offset == host_gen.offset);
    CHECK(op_gen.offset == uint64_t(c.B));  // one Philox block per randint call, B calls
    (expected.fallback ? fallbacks : normal) += 1;
  }
  CHECK(fallbacks >= 3);  // both branches were met
  CHECK(normal >= 3);
}

TEST_CASE("pair selection: B = 1 gives the identity pair and draws nothing") {
  Generator gen(5);
  const SelectedPairs p = select_pairs(Tensor::ones({1, 1}), 0.4f, selection_draws(1, gen, Device::cpu()));
  CHECK(gen.offset == 0);
  CHECK(p.index_i.to_vector() == std::vector<float>{0});
  CHECK(p.index_j.to_vector() == std::vector<float>{0});
  const SelectionStats s = selection_stats(p.stats.to_vector(), 1);
  CHECK(s.above_delta == 0);
  CHECK(s.fallback);
  CHECK(s.pool == 0);
}

TEST_CASE("pair selection: NaN similarities are never candidates and sort below every number") {
  Tensor s = similarity(6, 4200);
  std::vector<float> v = s.to_vector();
  v[1] = v[6] = NAN;  // (0, 1) and (1, 0)
  v[2 * 6 + 5] = v[5 * 6 + 2] = NAN;
  s = Tensor::from_vector(v, {6, 6});
  for (float delta : {0.3f, 1.0f}) {
    CAPTURE(delta);
    Generator gen(3);
    const SelectedPairs p = select_pairs(s, delta, selection_draws(6, gen, Device::cpu()));
    const std::vector<float> i = p.index_i.to_vector(), j = p.index_j.to_vector();
    for (size_t k = 0; k < i.size(); ++k) {
      CHECK(std::isnan(v[size_t(i[k] * 6 + j[k])]) == false);  // 15 upper entries, 13 numbers >= 2B = 12
      CHECK(i[k] != j[k]);
    }
    CHECK(std::isfinite(p.stats.to_vector()[3]));
  }
}

TEST_CASE("pair selection: its indices go into index ops unread, and bad inputs are named") {
  Generator gen(8);
  const SelectedPairs p = select_pairs(similarity(5, 4300), 0.4f, selection_draws(5, gen, Device::cpu()));
  const int64_t reads = host_read_count();
  Tensor x = leaf({5, 3}, 4301);
  Tensor picked = index_select(x, 0, p.index_i);
  CHECK(host_read_count() == reads);  // neither checked nor read: bounded by construction
  const std::vector<float> xi = x.to_vector(), got = picked.to_vector(), idx = p.index_i.to_vector();
  for (int64_t k = 0; k < 5; ++k)
    for (int64_t c = 0; c < 3; ++c) CHECK(got[size_t(k * 3 + c)] == xi[size_t(idx[size_t(k)] * 3 + c)]);
  // A bound larger than what is indexed is an error, not an unchecked read.
  check_throws_with([&] { index_select(leaf({4, 3}, 1), 0, p.index_i); }, {"index_select", "bounded_index", "[0, 4)"});
  // Writing in place forgets the bound: the values are checked again.
  Tensor idx_copy = bounded_index(Tensor::from_vector({0, 1}, {2}), 2);
  idx_copy.copy_(Tensor::from_vector({0, 7}, {2}));
  check_throws_with([&] { index_select(leaf({4, 3}, 2), 0, idx_copy); }, {"index_select", "7", "out of range"});
  check_throws_with([] { bounded_index(Tensor::zeros({2}), 0); }, {"bounded_index", "bound"});

  Generator g(1);
  check_throws_with([&] { select_pairs(Tensor::zeros({3, 4}), 0.4f, selection_draws(3, g, Device::cpu())); },
                    {"select_pairs", "[B, B]", "[3, 4]"});
  check_throws_with([&] { select_pairs(Tensor::zeros({3, 3}), 0.4f, Tensor::zeros({2, 4})); },
                    {"select_pairs", "draws", "[3, 4]"});
  check_throws_with([&] { select_pairs(Tensor::zeros({3, 3}), NAN, Tensor::zeros({3, 4})); }, {"select_pairs", "NaN"});
  check_throws_with([&] { select_pairs(Tensor::zeros({0, 0}), 0.4f, Tensor::zeros({0, 4})); },
                    {"select_pairs", "batch size 0"});
}

TEST_CASE("pair selection: a draw's four 16-bit parts give back the 64-bit value randint reduces") {
  Generator a(77), b(77);
  const std::vector<float> draws = selection_draw_values(9, a);
  for (int64_t k = 0; k < 9; ++k) {
    for (int p = 0; p < cpu::kDrawParts; ++p) {
      const float part = draws[size_t(k * cpu::kDrawParts + p)];
      CHECK((part >= 0 && part < 65536 && part == std::floor(part)));
    }
    const uint64_t r = cpu::draw_value(draws.data(), k);
    for (uint64_t n : {1ull, 2ull, 7ull, 1000003ull}) {
      Generator c = b;
      CHECK(r % n == c.randint(n));
    }
    b.randint(2);  // one block, as every randint
  }
  CHECK(a.offset == b.offset);
}
