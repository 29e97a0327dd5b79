// CUDA shape and index ops against their CPU twins, forward and backward: permute / transpose, concat, slice /
// split / chunk, index_select, gather, embedding, masked_fill and where, on odd sizes, size 1, empty and
// broadcast shapes; row_ranks. The scatter-add backwards (repeated indices) must equal the CPU bit for bit:
// they add in the CPU's order, so the same seed gives the same numbers on either device. Skipped without a GPU.
#include <array>
#include <cmath>

#include "ops/pair_selection.h"
#include "tests/cuda/cuda_testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;
constexpr Tol kExact{0, 0};  // pure copies: the same floats

// n integer indices in [0, limit) as floats, with repeats (seeded).
Tensor indices(int64_t n, int64_t limit, uint64_t seed, const Shape& shape = {}) {
  Generator gen(seed);
  std::vector<float> v = Tensor::rand({n}, gen, 0.0f, float(limit)).to_vector();
  for (float& x : v) x = std::min(float(limit - 1), std::floor(x));
  return Tensor::from_vector(v, shape.empty() ? Shape{n} : shape);
}

// A 0/1 mask of `shape` (about half ones).
Tensor mask_of(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  std::vector<float> v = Tensor::rand(shape, gen).to_vector();
  for (float& x : v) x = x < 0.5f ? 1.0f : 0.0f;
  return Tensor::from_vector(v, shape);
}

}  // namespace

TEST_CASE("cuda permute and transpose match the CPU, grads included") {
  MSMIX_REQUIRE_GPU();
  struct Case {
    Shape shape;
    std::vector<int64_t> perm;
  };
  const std::vector<Case> cases = {{{3, 5}, {1, 0}},          {{2, 3, 4}, {2, 0, 1}},      {{7, 1, 9}, {1, 2, 0}},
                                   {{2, 3, 4, 5}, {3, 1, 0, 2}}, {{0, 3}, {1, 0}},         {{1, 1}, {1, 0}},
                                   {{33, 65, 3}, {0, 2, 1}},   {{4, 2, 3, 2, 5}, {4, 3, 2, 1, 0}}};
  uint64_t seed = 1000;
  for (const Case& c : cases) {
    const std::vector<int64_t> perm = c.perm;
    check_twins("permute " + shape_str(c.shape) + " " + shape_str(perm),
                [perm](const std::vector<Tensor>& t) { return permute(t[0], perm); }, {leaf(c.shape, seed++)},
                kExact, kExact);
  }
  check_twins("transpose(-1, -2) [5, 17, 31]", [](const std::vector<Tensor>& t) { return transpose(t[0], -1, -2); },
              {leaf({5, 17, 31}, seed++)}, kExact, kExact);
}

TEST_CASE("cuda concat, slice, split and chunk match the CPU, grads included") {
  MSMIX_REQUIRE_GPU();
  uint64_t seed = 1100;
  for (int64_t dim : {0, 1, 2}) {
    Shape a{3, 4, 5}, b{3, 4, 5}, c{3, 4, 5};
    b[size_t(dim)] = 1;
    c[size_t(dim)] = 7;
    check_twins("concat dim " + std::to_string(dim),
                [dim](const std::vector<Tensor>& t) { return concat({t[0], t[1], t[2]}, dim); },
                {leaf(a, seed++), leaf(b, seed++), leaf(c, seed++)}, kExact, kExact);
  }
  check_twins("concat with an empty piece",
              [](const std::vector<Tensor>& t) { return concat({t[0], t[1]}, 1); },
              {leaf({2, 0, 3}, seed++), leaf({2, 5, 3}, seed++)}, kExact, kExact);
  check_twins("concat one frozen input", [](const std::vector<Tensor>& t) { return concat({t[0], t[1]}, 0); },
              {leaf({2, 9}, seed++).detach(), leaf({3, 9}, seed++)}, kExact, kExact);
  struct Slice {
    Shape shape;
    int64_t dim, start, end;
  };
  for (const Slice& s : std::vector<Slice>{{{9, 5}, 0, 2, 7}, {{4, 11, 3}, 1, -4, 100}, {{4, 11, 3}, 2, 1, 2},
                                           {{6}, 0, 3, 3}, {{5, 5}, -1, 0, 5}, {{1, 1}, 0, 0, 1}}) {
    check_twins(fmt::format("slice {} dim {} [{}, {})", shape_str(s.shape), s.dim, s.start, s.end),
                [s](const std::vector<Tensor>& t) { return slice(t[0], s.dim, s.start, s.end); },
                {leaf(s.shape, seed++)}, kExact, kExact);
  }
  // split and chunk: every piece feeds the output, so each slice node's backward runs (and the grads add).
  check_twins("split [2, 3, 1] and reassembled doubled",
              [](const std::vector<Tensor>& t) {
                std::vector<Tensor> p = split(t[0], {2, 3, 1}, 1);
                return concat({mul(p[2], 2.0f), p[0], p[1], p[0]}, 1);
              },
              {leaf({4, 6, 3}, seed++)}, kExact, kElementwise);
  check_twins("chunk 3 of 7", [](const std::vector<Tensor>& t) { return concat(chunk(t[0], 3, 0), 0); },
              {leaf({7, 5}, seed++)}, kExact, kExact);
}

TEST_CASE("cuda index_select, embedding and gather match the CPU; repeated indices add in the CPU's order") {
  MSMIX_REQUIRE_GPU();
  uint64_t seed = 1200;
  struct Sel {
    Shape shape;
    int64_t dim, n;
  };
  for (const Sel& s : std::vector<Sel>{{{10, 3}, 0, 25}, {{4, 9, 5}, 1, 13}, {{4, 9, 5}, 2, 1}, {{3, 7}, 1, 0},
                                       {{1, 1}, 0, 3}, {{2, 300, 129}, 1, 700}, {{2, 600, 129}, 1, 1000}}) {
    // The backward of a device index without host values: searched per element up to
    // cuda::kSearchScatterMax, planned from a read back above it (the last case).
    Tensor index = indices(s.n, s.shape[size_t(s.dim)], seed++);
    const int64_t dim = s.dim;
    // Exact both ways: the forward copies, the backward adds the same floats in the same order.
    check_twins(fmt::format("index_select {} dim {} n {}", shape_str(s.shape), s.dim, s.n),
                [dim](const std::vector<Tensor>& t) { return index_select(t[0], dim, t[1]); },
                {leaf(s.shape, seed++), index}, kExact, kExact);
  }
  // Embedding: ids [B, T] into [V, D], many repeats of a few ids (a padding id is the common case).
  for (auto [B, T, V, D] :
       std::vector<std::array<int64_t, 4>>{{3, 7, 5, 4}, {16, 50, 30, 33}, {1, 1, 1, 1}, {0, 4, 3, 2}}) {
    Tensor ids = indices(B * T, V, seed++, {B, T});
    check_twins(fmt::format("embedding B {} T {} V {} D {}", B, T, V, D),
                [](const std::vector<Tensor>& t) { return embedding(t[1], t[0]); }, {leaf({V, D}, seed++), ids},
                kExact, kExact);
  }
  struct Gat {
    Shape x, index;
    int64_t dim;
  };
  for (const Gat& c : std::vector<Gat>{{{5, 7}, {5, 3}, 1}, {{5, 7}, {9, 7}, 0}, {{4, 6, 5}, {3, 8, 2}, 1},
                                       {{4, 6, 5}, {4, 6, 11}, 2}, {{3, 4}, {3, 0}, 1}, {{1}, {4}, 0}}) {
    Tensor index = indices(shape_numel(c.index), c.x[size_t(c.dim)], seed++, c.index);
    const int64_t dim = c.dim;
    check_twins(fmt::format("gather x {} index {} dim {}", shape_str(c.x), shape_str(c.index), c.dim),
                [dim](const std::vector<Tensor>& t) { return gather(t[0], dim, t[1]); }, {leaf(c.x, seed++), index},
                kExact, kExact);
  }
}

TEST_CASE("cuda index ops validate device indices on the host and name the bad value") {
  MSMIX_REQUIRE_GPU();
  Tensor x = Tensor::ones({3, 4}, Device::cuda());
  Tensor bad = Tensor::from_vector({0, 3, 1}, {3}).to(Device::cuda());
  check_throws_with([&] { index_select(x, 0, bad); }, {"index_select", "index[1] = 3", "out of range [0, 3)"});
  check_throws_with([&] { embedding(Tensor::from_vector({1.5f}, {1}).to(Device::cuda()), x); },
                    {"embedding", "not an integer"});
  check_throws_with([&] { gather(x, 1, Tensor::from_vector({-1, 0, 0, 0, 0, 0}, {3, 2}).to(Device::cuda())); },
                    {"gather", "negative"});
}

TEST_CASE("cuda masked_fill and where match the CPU with broadcasting, grads included") {
  MSMIX_REQUIRE_GPU();
  uint64_t seed = 1300;
  for (auto [xs, ms] : std::vector<std::pair<Shape, Shape>>{{{4, 7}, {4, 7}},
                                                            {{3, 5, 9}, {5, 1}},
                                                            {{2, 3, 4}, {}},
                                                            {{16, 10, 50, 50}, {16, 1, 1, 50}},
                                                            {{0, 3}, {3}},
                                                            {{1}, {1}}}) {
    Tensor mask = mask_of(ms, seed++);
    check_twins("masked_fill x " + shape_str(xs) + " mask " + shape_str(ms),
                [](const std::vector<Tensor>& t) { return masked_fill(t[0], t[1], -1e9f); }, {leaf(xs, seed++), mask},
                kExact, kExact);
  }
  struct W {
    Shape c, a, b;
  };
  for (const W& w : std::vector<W>{{{5, 6}, {5, 6}, {5, 6}},
                                   {{5, 1}, {1, 6}, {5, 6}},
                                   {{7}, {3, 1, 7}, {2, 1}},
                                   {{}, {4}, {}},
                                   {{2, 3, 4, 5}, {1}, {3, 1, 5}},
                                   {{0, 2}, {2}, {1}}}) {
    Tensor cond = mask_of(w.c, seed++);
    // a's and b's grads sum g over their broadcast dims.
    const int64_t L = std::max<int64_t>(1, shape_numel(broadcast_shapes(broadcast_shapes(w.c, w.a, "t"), w.b, "t")));
    check_twins(fmt::format("where c {} a {} b {}", shape_str(w.c), shape_str(w.a), shape_str(w.b)),
                [](const std::vector<Tensor>& t) { return where(t[0], t[1], t[2]); },
                {cond, leaf(w.a, seed++), leaf(w.b, seed++)}, kExact, reduction_tol(L));
  }
}

// MS-Mix's pair selection (ops/pair_selection.h) on the GPU: the CPU's pairs and statistics exactly, for
// normal batches, the fallback to the top 2B with ties across its edge, NaN entries, a flat matrix, B = 1 and
// MulT's to LF_DNN's batch sizes; nothing read back, and its indices then go through index_select (the
// search scatter-add, no plan) without a read either.
TEST_CASE("cuda select_pairs equals the CPU's selection, and its indices are used unread") {
  MSMIX_REQUIRE_GPU();
  struct Case {
    int64_t B;
    float delta;
    int levels;     // > 0: entries rounded to that many steps (ties)
    bool nan, flat;
  };
  const std::vector<Case> cases = {
      {1, 0.4f, 0, false, false},   {2, 0.4f, 0, false, false},   {2, 1.0f, 0, false, false},
      {3, 0.4f, 0, false, false},   {16, 0.4f, 0, false, false},  {16, 1.0f, 0, false, false},
      {24, 0.4f, 3, false, false},  {33, 1.0f, 3, false, false},  {32, 0.4f, 0, true, false},
      {32, 1.0f, 0, true, false},   {17, 0.4f, 0, false, true},   {64, -1.0f, 0, false, false},
      {128, 0.4f, 0, false, false}, {128, 0.9f, 5, false, false}, {128, 1.0f, 2, false, false},
      {300, 0.4f, 0, false, false}};
  uint64_t seed = 1500;
  for (const Case& c : cases) {
    CAPTURE(c.B);
    CAPTURE(c.delta);
    CAPTURE(c.levels);
    CAPTURE(c.nan);
    std::vector<float> v = leaf({c.B, c.B}, seed++).to_vector();
    for (int64_t i = 0; i < c.B; ++i)
      for (int64_t j = 0; j < c.B; ++j) {
        float x = c.flat ? 0.3f : std::tanh(v[size_t(std::min(i, j) * c.B + std::max(i, j))]);
        if (c.levels > 0) x = std::round(x * float(c.levels)) / float(c.levels);
        if (c.nan && (i + 2 * j) % 7 == 3) x = NAN;
        v[size_t(i * c.B + j)] = i == j ? 1.0f : x;
      }
    const Tensor s = Tensor::from_vector(v, {c.B, c.B});
    Generator gen(seed++);
    const Tensor draws = selection_draws(c.B, gen, Device::cpu());
    const SelectedPairs cpu_pairs = select_pairs(s, c.delta, draws);
    const int64_t reads = host_read_count();
    const SelectedPairs gpu_pairs = select_pairs(s.to(Device::cuda()), c.delta, draws.to(Device::cuda()));
    Tensor x = gpu_leaf(leaf({c.B, 5}, seed++));
    x.set_requires_grad(true);
    Tensor y = index_select(x, 0, gpu_pairs.index_j);
    sum(mul(y, y)).backward();
    CHECK(host_read_count() == reads);
    check_close(gpu_pairs.index_i, cpu_pairs.index_i, 0, 0, "index_i");
    check_close(gpu_pairs.index_j, cpu_pairs.index_j, 0, 0, "index_j");
    const std::vector<float> a = cpu_pairs.stats.to_vector(), b = gpu_pairs.stats.to_vector();
    for (size_t k = 0; k < a.size(); ++k) CHECK(((std::isnan(a[k]) && std::isnan(b[k])) || a[k] == b[k]));
  }
}

TEST_CASE("cuda row_ranks equals the CPU, ties included") {
  MSMIX_REQUIRE_GPU();
  for (auto [R, C] : {std::pair<int64_t, int64_t>{1, 1}, {5, 3}, {300, 7}, {2, 40}}) {
    CAPTURE(R);
    CAPTURE(C);
    Tensor x = indices(R * C, 5, 17, {R, C});  // five levels: ties in every row
    CHECK(row_ranks(x.to(Device::cuda())).to_vector() == row_ranks(x).to_vector());
  }
}
