// Indexing ops against naive multi-index arithmetic, their grads against finite differences (and, for the
// scatter-adds with repeated indices, against hand-counted sums), and their error messages.
#include "engine/cuda_runtime.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

Shape unravel(int64_t flat, const Shape& shape) {
  Shape at(shape.size());
  for (int64_t d = int64_t(shape.size()) - 1; d >= 0; --d) {
    at[d] = flat % shape[d];
    flat /= shape[d];
  }
  return at;
}

int64_t ravel(const Shape& at, const Shape& shape) {
  int64_t flat = 0;
  for (size_t d = 0; d < shape.size(); ++d) flat = flat * shape[d] + at[d];
  return flat;
}

// Integral index values in [0, limit), with repeats: a fixed scramble of 0, 1, 2, ...
Tensor make_index(const Shape& shape, int64_t limit, int64_t salt = 0) {
  std::vector<float> v(size_t(shape_numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = float((int64_t(i) * 7 + salt * 3 + 1) % limit);
  return Tensor::from_vector(v, shape);
}

// Python's slice(start, end) over a dim of size n, written as a membership test: is i inside?
bool in_python_slice(int64_t i, int64_t n, int64_t start, int64_t end) {
  if (start < 0) start += n;
  if (end < 0) end += n;
  return i >= start && i < end;  // clamping to [0, n] changes nothing for 0 <= i < n
}

}  // namespace

TEST_CASE("concat against index arithmetic, on every dim, with empty pieces") {
  Shape base = {2, 3, 4};
  for (int64_t dim : {0, 1, 2, -1, -3}) {
    CAPTURE(dim);
    int64_t d = dim < 0 ? dim + 3 : dim;
    std::vector<int64_t> sizes = {2, 0, 3};
    std::vector<Tensor> xs;
    for (size_t k = 0; k < sizes.size(); ++k) {
      Shape s = base;
      s[d] = sizes[k];
      xs.push_back(leaf(s, 10 + k));
    }
    Tensor out = concat(xs, dim);
    Shape want = base;
    want[d] = 5;
    REQUIRE(out.shape() == want);
    std::vector<float> o = out.to_vector();
    for (int64_t i = 0; i < out.numel(); ++i) {
      Shape at = unravel(i, want);
      size_t k = at[d] < 2 ? 0 : 2;
      at[d] -= k == 0 ? 0 : 2;
      CHECK(o[i] == xs[k].to_vector()[ravel(at, xs[k].shape())]);
    }
    check_gradients([dim](const std::vector<Tensor>& v) { return concat(v, dim); }, xs);
  }
  Tensor one = leaf({3}, 4);
  CHECK(concat({one}, 0).to_vector() == one.to_vector());
  CHECK(!concat({one}, 0).same(one));
  // Only some inputs need grad: the others get none and nothing breaks.
  Tensor frozen = Tensor::ones({2});
  Tensor c = concat({frozen, one}, 0);
  c.backward(Tensor::arange(5));
  CHECK(one.grad().to_vector() == std::vector<float>{2, 3, 4});
  CHECK(!frozen.grad().defined());
}

TEST_CASE("concat errors") {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 3});
  check_throws_with([&] { concat({a, b}, 1); }, {"concat: shapes differ outside dim 1: [2, 3] and [4, 3]"});
  CHECK(concat({a, b}, 0).shape() == Shape{6, 3});
  check_throws_with([&] { concat({a, Tensor::zeros({6})}, 0); }, {"concat", "ranks differ", "[2, 3]", "[6]"});
  check_throws_with([&] { concat({}, 0); }, {"concat", "no tensors"});
  check_throws_with([&] { concat({a, Tensor()}, 0); }, {"concat", "input 1", "undefined"});
  check_throws_with([&] { concat({a, b}, 2); }, {"concat", "dim 2", "rank 2"});
  check_throws_with([&] { concat({Tensor::scalar(1)}, 0); }, {"concat", "rank 0"});
}

TEST_CASE("slice follows Python slicing: negative and clamped bounds, empty results") {
  const int64_t n = 5;
  // (start, end) -> the elements Python's range(5)[start:end] keeps, hand-written.
  struct Case {
    int64_t start, end;
    std::vector<float> want;
  };
  std::vector<Case> cases = {{1, 3, {1, 2}},      {0, 5, {0, 1, 2, 3, 4}}, {-2, 5, {3, 4}},  {-10, 2, {0, 1}},
                             {3, 100, {3, 4}},    {4, 2, {}},              {-1, -3, {}},     {0, 0, {}},
                             {-100, -100, {}},    {2, -1, {2, 3}},         {5, 9, {}},       {-5, -4, {0}}};
  Tensor x = Tensor::arange(n);
  for (const Case& c : cases) {
    CAPTURE(c.start);
    CAPTURE(c.end);
    Tensor s = slice(x, 0, c.start, c.end);
    CHECK(s.shape() == Shape{int64_t(c.want.size())});
    CHECK(s.to_vector() == c.want);
  }
  // Higher rank, every dim, against the membership test.
  Shape shape = {3, 4, 5};
  Tensor y = leaf(shape, 7);
  std::vector<float> yv = y.to_vector();
  for (int64_t dim : {0, 1, 2, -1}) {
    int64_t d = dim < 0 ? dim + 3 : dim;
    for (auto [start, end] : std::vector<std::pair<int64_t, int64_t>>{{1, -1}, {-2, 100}, {0, 1}, {2, 2}}) {
      CAPTURE(dim);
      CAPTURE(start);
      Tensor s = slice(y, dim, start, end);
      std::vector<float> want;
      for (int64_t i = 0; i < y.numel(); ++i)
        if (in_python_slice(unravel(i, shape)[d], shape[d], start, end)) want.push_back(yv[i]);
      CHECK(s.to_vector() == want);
      CHECK(s.dim() == 3);
    }
    check_gradients([dim](const std::vector<Tensor>& v) { return slice(v[0], dim, 1, -1); }, {y});
  }
  check_throws_with([&] { slice(y, 3, 0, 1); }, {"slice", "dim 3", "rank 3"});
}

TEST_CASE("split and chunk give independent pieces") {
  Tensor x = leaf({2, 6, 3}, 8);
  std::vector<Tensor> parts = split(x, {1, 0, 3, 2}, 1);
  REQUIRE(parts.size() == 4);
  CHECK(parts[1].shape() == Shape{2, 0, 3});
  CHECK(parts[2].to_vector() == slice(x, 1, 1, 4).to_vector());
  CHECK(concat(parts, 1).to_vector() == x.to_vector());
  // Any subset of the pieces can feed the loss; the unused rows get zero grad.
  check_gradients(
      [](const std::vector<Tensor>& v) {
        std::vector<Tensor> p = split(v[0], {2, 2, 2}, -2);
        return add(mul(p[0], 2.0f), p[2]);
      },
      {x});
  x.zero_grad();
  split(x, {2, 4}, 1)[1].backward(Tensor::ones({2, 4, 3}));
  std::vector<float> g = x.grad().to_vector();
  for (int64_t i = 0; i < x.numel(); ++i) CHECK(g[i] == (unravel(i, x.shape())[1] >= 2 ? 1.0f : 0.0f));

  // torch.chunk's sizes: ceil(n / chunks), last smaller, possibly fewer pieces; empty dim -> chunks empties.
  auto sizes = [](int64_t n, int64_t chunks) {
    std::vector<int64_t> out;
    for (const Tensor& p : chunk(Tensor::zeros({n, 2}), chunks, 0)) out.push_back(p.size(0));
    return out;
  };
  CHECK(sizes(5, 3) == std::vector<int64_t>{2, 2, 1});
  CHECK(sizes(6, 4) == std::vector<int64_t>{2, 2, 2});
  CHECK(sizes(2, 4) == std::vector<int64_t>{1, 1});
  CHECK(sizes(6, 1) == std::vector<int64_t>{6});
  CHECK(sizes(0, 3) == std::vector<int64_t>{0, 0, 0});
  std::vector<Tensor> c = chunk(x, 2, -1);
  REQUIRE(c.size() == 2);
  CHECK(c[1].shape() == Shape{2, 6, 1});
  CHECK(c[1].to_vector() == slice(x, 2, 2, 3).to_vector());

  check_throws_with([&] { split(x, {1, 2}, 1); }, {"split", "[1, 2]", "sum to 3", "[2, 6, 3]", "size 6"});
  check_throws_with([&] { split(x, {7, -1}, 1); }, {"split", "negative"});
  check_throws_with([&] { chunk(x, 0, 1); }, {"chunk", "positive"});
}

TEST_CASE("index_select against index arithmetic, with repeats and empty index") {
  struct Case {
    Shape shape;
    int64_t dim;
    int64_t n;
  };
  for (const Case& c : std::vector<Case>{{{5}, 0, 7}, {{4, 3}, 0, 5}, {{4, 3}, -1, 4}, {{2, 5, 3}, 1, 6},
                                         {{2, 5, 3}, 2, 2}, {{2, 5, 3}, 1, 0}, {{3, 1, 2}, 1, 3}}) {
    CAPTURE(shape_str(c.shape));
    CAPTURE(c.dim);
    int64_t d = c.dim < 0 ? c.dim + int64_t(c.shape.size()) : c.dim;
    Tensor x = leaf(c.shape, 20);
    Tensor index = make_index({c.n}, c.shape[d]);
    Tensor out = index_select(x, c.dim, index);
    Shape want_shape = c.shape;
    want_shape[d] = c.n;
    REQUIRE(out.shape() == want_shape);
    std::vector<float> o = out.to_vector(), xv = x.to_vector(), iv = index.to_vector();
    for (int64_t i = 0; i < out.numel(); ++i) {
      Shape at = unravel(i, want_shape);
      at[d] = int64_t(iv[at[d]]);
      CHECK(o[i] == xv[ravel(at, c.shape)]);
    }
    check_gradients([&](const std::vector<Tensor>& v) { return index_select(v[0], c.dim, index); }, {x});
  }
  // Repeated indices accumulate: row 0 is picked three times, row 1 never.
  Tensor x = leaf({3, 2}, 21);
  index_select(x, 0, Tensor::from_vector({0, 0, 2, 0}, {4})).backward(Tensor::ones({4, 2}));
  CHECK(x.grad().to_vector() == std::vector<float>{3, 3, 0, 0, 1, 1});
}

TEST_CASE("index_select and gather: large inputs take the parallel paths and still scatter-add exactly") {
  // x [3, 40, 1500]: inner > the kernels' column block and work > their threshold.
  Shape shape = {3, 40, 1500};
  Tensor x = leaf(shape, 22);
  Tensor index = make_index({50}, 40);  // 50 picks of 40 rows: repeats
  Tensor out = index_select(x, 1, index);
  Tensor g = Tensor::arange(float(0), float(out.numel())).detach();
  g = mul(g, 1e-3f);
  out.backward(reshape(g, out.shape()));
  std::vector<float> o = out.to_vector(), xv = x.to_vector(), iv = index.to_vector(), gv = g.to_vector();
  std::vector<double> want(xv.size(), 0.0);
  for (int64_t i = 0; i < out.numel(); ++i) {
    Shape at = unravel(i, out.shape());
    at[1] = int64_t(iv[at[1]]);
    int64_t src = ravel(at, shape);
    REQUIRE(o[i] == xv[src]);
    want[src] += gv[i];
  }
  check_close(x.grad().to_vector(), std::vector<float>(want.begin(), want.end()), 1e-5, 1e-4, "index_select grad");

  x.zero_grad();
  Tensor gidx = make_index({3, 25, 1500}, 40, 1);
  Tensor gout = gather(x, 1, gidx);
  gout.backward(reshape(mul(Tensor::arange(float(0), float(gout.numel())), 1e-3f), gout.shape()));
  std::vector<float> go = gout.to_vector(), giv = gidx.to_vector();
  std::fill(want.begin(), want.end(), 0.0);
  for (int64_t i = 0; i < gout.numel(); ++i) {
    Shape at = unravel(i, gout.shape());
    at[1] = int64_t(giv[i]);
    int64_t src = ravel(at, shape);
    REQUIRE(go[i] == xv[src]);
    want[src] += 1e-3 * double(float(i));
  }
  check_close(x.grad().to_vector(), std::vector<float>(want.begin(), want.end()), 1e-4, 1e-3, "gather grad");
}

TEST_CASE("gather as torch.gather, including an index smaller than x") {
  struct Case {
    Shape x_shape, index_shape;
    int64_t dim;
  };
  for (const Case& c : std::vector<Case>{{{3, 4, 5}, {3, 4, 5}, 1},
                                         {{3, 4, 5}, {2, 6, 3}, 1},
                                         {{3, 4, 5}, {5, 2, 5}, 0},
                                         {{3, 4, 5}, {3, 4, 7}, -1},
                                         {{6}, {9}, 0},
                                         {{3, 4}, {2, 0}, 1},
                                         {{4, 1}, {4, 1}, 0}}) {
    CAPTURE(shape_str(c.x_shape));
    CAPTURE(shape_str(c.index_shape));
    CAPTURE(c.dim);
    int64_t d = c.dim < 0 ? c.dim + int64_t(c.x_shape.size()) : c.dim;
    Tensor x = leaf(c.x_shape, 30);
    Tensor index = make_index(c.index_shape, c.x_shape[d], 2);
    Tensor out = gather(x, c.dim, index);
    REQUIRE(out.shape() == c.index_shape);
    std::vector<float> o = out.to_vector(), xv = x.to_vector(), iv = index.to_vector();
    for (int64_t i = 0; i < out.numel(); ++i) {
      Shape at = unravel(i, c.index_shape);
      at[d] = int64_t(iv[i]);
      CHECK(o[i] == xv[ravel(at, c.x_shape)]);
    }
    check_gradients([&](const std::vector<Tensor>& v) { return gather(v[0], c.dim, index); }, {x});
  }
  // A row picking the same column twice gets both grads.
  Tensor x = leaf({2, 3}, 31);
  gather(x, 1, Tensor::from_vector({2, 2, 0, 1}, {2, 2})).backward(Tensor::from_vector({1, 10, 100, 1000}, {2, 2}));
  CHECK(x.grad().to_vector() == std::vector<float>{0, 0, 11, 100, 1000, 0});
}

TEST_CASE("index validation: non-integers, negatives, out of range, wrong rank") {
  Tensor x = Tensor::zeros({4, 3});
  check_throws_with([&] { index_select(x, 0, Tensor::from_vector({0, 1.5f}, {2})); },
                    {"index_select: index[1] = 1.5 is not an integer"});
  check_throws_with([&] { index_select(x, 0, Tensor::from_vector({0, 1, -1}, {3})); },
                    {"index_select: index[2] = -1 is negative", "[0, 4)"});
  check_throws_with([&] { index_select(x, 1, Tensor::from_vector({3}, {1})); },
                    {"index_select: index[0] = 3 is out of range [0, 3) for dim 1 of x [4, 3] cpu"});
  check_throws_with([&] { index_select(x, 0, Tensor::from_vector({std::nanf("")}, {1})); },
                    {"index_select: index[0]", "not an integer"});
  check_throws_with([&] { index_select(x, 0, Tensor::zeros({2, 2})); }, {"index_select", "1-D", "[2, 2]"});
  check_throws_with([&] { index_select(x, 2, Tensor::zeros({1})); }, {"index_select", "dim 2"});

  check_throws_with([&] { gather(x, 1, Tensor::from_vector({0, 1, 2, 0, 4, 1}, {2, 3})); },
                    {"gather: index[1, 1] = 4 is out of range [0, 3) for dim 1 of x [4, 3] cpu"});
  check_throws_with([&] { gather(x, 0, Tensor::from_vector({0, -2}, {1, 2})); },
                    {"gather: index[0, 1] = -2", "negative"});
  check_throws_with([&] { gather(x, 1, Tensor::zeros({4})); }, {"gather", "rank", "[4]", "[4, 3]"});
  check_throws_with([&] { gather(x, 1, Tensor::zeros({5, 1})); }, {"gather", "larger", "[5, 1]", "[4, 3]", "dim 0"});

  Tensor w = Tensor::zeros({10, 4});
  check_throws_with([&] { embedding(Tensor::from_vector({1, 2, 3, 4, 5, 10}, {2, 3}), w); },
                    {"embedding: ids[1, 2] = 10 is out of range [0, 10) for weight [10, 4] cpu"});
  check_throws_with([&] { embedding(Tensor::from_vector({-3}, {1}), w); }, {"embedding: ids[0] = -3 is negative"});
  check_throws_with([&] { embedding(Tensor::from_vector({0.25f}, {1}), w); }, {"embedding: ids[0] = 0.25", "integer"});
  check_throws_with([&] { embedding(Tensor::zeros({2}), Tensor::zeros({10})); }, {"embedding", "[V, D]", "[10]"});
  check_throws_with([&] { index_select(Tensor(), 0, Tensor::zeros({1})); }, {"index_select", "undefined"});
}

TEST_CASE("embedding looks up rows; repeated ids accumulate into weight's grad") {
  Tensor w = leaf({5, 4}, 40);
  Tensor ids = Tensor::from_vector({1, 4, 1, 0, 1, 3}, {2, 3});
  Tensor out = embedding(ids, w);
  REQUIRE(out.shape() == Shape{2, 3, 4});
  std::vector<float> o = out.to_vector(), wv = w.to_vector(), iv = ids.to_vector();
  for (int64_t i = 0; i < out.numel(); ++i) CHECK(o[i] == wv[int64_t(iv[i / 4]) * 4 + i % 4]);
  check_gradients([&](const std::vector<Tensor>& v) { return embedding(ids, v[0]); }, {w});
  w.zero_grad();
  out = embedding(ids, w);
  out.backward(Tensor::ones(out.shape()));
  CHECK(w.grad().to_vector() == std::vector<float>{1, 1, 1, 1, 3, 3, 3, 3, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1});
  CHECK(embedding(Tensor::scalar(2), w).to_vector() == slice(w, 0, 2, 3).to_vector());
  CHECK(embedding(Tensor::scalar(2), w).shape() == Shape{4});
  CHECK(embedding(Tensor::zeros({0, 3}), w).shape() == Shape{0, 3, 4});
  // ids never get a grad, even when they ask for one.
  Tensor float_ids = Tensor::from_vector({0, 2}, {2});
  float_ids.set_requires_grad(true);
  sum(embedding(float_ids, w)).backward();
  CHECK(!float_ids.grad().defined());
}

TEST_CASE("masked_fill broadcasts the mask; filled positions get zero grad, the mask none") {
  Shape shape = {2, 3, 4};
  for (const Shape& mask_shape : std::vector<Shape>{{2, 3, 4}, {3, 1}, {4}, {}, {2, 1, 4}, {1, 3, 1}}) {
    CAPTURE(shape_str(mask_shape));
    Tensor x = leaf(shape, 50);
    Tensor mask = make_index(mask_shape, 2, 5);  // zeros and ones
    Tensor out = masked_fill(x, mask, -7.5f);
    REQUIRE(out.shape() == shape);
    std::vector<float> o = out.to_vector(), xv = x.to_vector(), mv = mask.to_vector();
    int64_t lead = int64_t(shape.size() - mask_shape.size());
    for (int64_t i = 0; i < out.numel(); ++i) {
      Shape at = unravel(i, shape), mat(mask_shape.size());
      for (size_t d = 0; d < mask_shape.size(); ++d) mat[d] = mask_shape[d] == 1 ? 0 : at[d + lead];
      CHECK(o[i] == (mv[ravel(mat, mask_shape)] != 0 ? -7.5f : xv[i]));
    }
    check_gradients([&](const std::vector<Tensor>& v) { return masked_fill(v[0], mask, -7.5f); }, {x});
  }
  // The fill replaces whatever was there, NaN and inf included (a multiply by 0 would not).
  Tensor x = Tensor::from_vector({std::nanf(""), 1, INFINITY, 2}, {2, 2});
  x.set_requires_grad(true);
  Tensor mask = Tensor::from_vector({1, 0, 1, 0}, {2, 2});
  mask.set_requires_grad(true);
  Tensor out = masked_fill(x, mask, -INFINITY);
  CHECK(out.to_vector() == std::vector<float>{-INFINITY, 1, -INFINITY, 2});
  out.backward(Tensor::full({2, 2}, 3));
  CHECK(x.grad().to_vector() == std::vector<float>{0, 3, 0, 3});
  CHECK(!mask.grad().defined());
  CHECK(masked_fill(Tensor::zeros({0, 3}), Tensor::ones({3}), 1).shape() == Shape{0, 3});

  check_throws_with([] { masked_fill(Tensor::zeros({2, 3}), Tensor::zeros({3, 4}), 0); },
                    {"masked_fill", "[3, 4]", "[2, 3]"});
  check_throws_with([] { masked_fill(Tensor::zeros({3}), Tensor::zeros({2, 3}), 0); },
                    {"masked_fill", "[2, 3]", "[3]"});
}

TEST_CASE("where broadcasts all three; grads reduce back to a's and b's shapes") {
  struct Case {
    Shape cond, a, b;
  };
  for (const Case& c : std::vector<Case>{{{2, 3, 4}, {2, 3, 4}, {2, 3, 4}},
                                         {{2, 1, 4}, {3, 1}, {4}},
                                         {{4}, {2, 3, 4}, {}},
                                         {{}, {3, 4}, {2, 1, 1}},
                                         {{3, 1}, {1, 4}, {3, 4}}}) {
    CAPTURE(shape_str(c.cond));
    CAPTURE(shape_str(c.a));
    CAPTURE(shape_str(c.b));
    Tensor cond = make_index(c.cond, 2, 1), a = leaf(c.a, 60), b = leaf(c.b, 61);
    Tensor out = where(cond, a, b);
    Shape shape = broadcast_shapes(broadcast_shapes(c.cond, c.a, "test"), c.b, "test");
    REQUIRE(out.shape() == shape);
    auto value = [&](const Tensor& t, const Shape& at) {  // t broadcast to `shape`, read at `at`
      Shape s = t.shape(), tat(s.size());
      int64_t lead = int64_t(shape.size() - s.size());
      for (size_t d = 0; d < s.size(); ++d) tat[d] = s[d] == 1 ? 0 : at[d + lead];
      return t.to_vector()[ravel(tat, s)];
    };
    std::vector<float> o = out.to_vector();
    for (int64_t i = 0; i < out.numel(); ++i) {
      Shape at = unravel(i, shape);
      CHECK(o[i] == (value(cond, at) != 0 ? value(a, at) : value(b, at)));
    }
    check_gradients([&](const std::vector<Tensor>& v) { return where(cond, v[0], v[1]); }, {a, b});
  }
  // cond gets no grad; a frozen operand gets none either.
  Tensor cond = Tensor::from_vector({1, 0, 0}, {3});
  cond.set_requires_grad(true);
  Tensor a = leaf({3}, 62), b = Tensor::zeros({1});
  where(cond, a, b).backward(Tensor::from_vector({5, 6, 7}, {3}));
  CHECK(a.grad().to_vector() == std::vector<float>{5, 0, 0});
  CHECK(!cond.grad().defined());
  CHECK(!b.grad().defined());
  check_throws_with([] { where(Tensor::zeros({2}), Tensor::zeros({3}), Tensor::zeros({1})); },
                    {"where", "[2]", "[3]", "[1]", "broadcast"});
}

TEST_CASE("index ops reject tensors on different devices") {
  if (cuda::device_count() == 0) {
    MESSAGE("no GPU: skipping the mixed-device checks");
    return;
  }
  Tensor x = Tensor::zeros({2, 3}), g = Tensor::zeros({2, 3}).to(Device::cuda());
  Tensor i = Tensor::zeros({2}).to(Device::cuda());
  check_throws_with([&] { concat({x, g}, 0); }, {"concat", "different devices", "cpu", "cuda:0"});
  check_throws_with([&] { index_select(x, 0, i); }, {"index_select", "different devices"});
  check_throws_with([&] { gather(x, 1, g); }, {"gather", "different devices"});
  check_throws_with([&] { embedding(i, x); }, {"embedding", "different devices"});
  check_throws_with([&] { masked_fill(x, g, 0); }, {"masked_fill", "different devices"});
  check_throws_with([&] { where(x, g, x); }, {"where", "different devices"});
  // One device is fine: slice runs on the GPU (its CUDA twin tests are in tests/cuda/test_cuda_index.cpp).
  Tensor s = slice(g, 0, 0, 1);
  CHECK(s.is_cuda());
  CHECK(s.shape() == Shape{1, 3});
}
