#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

// Naive broadcasting reference: index each operand by the output's multi-index.
static std::vector<float> naive_binary(const Tensor& a, const Tensor& b, const Shape& out, float (*f)(float, float)) {
  std::vector<float> va = a.to_vector(), vb = b.to_vector(), r(shape_numel(out));
  auto offset = [&](const Shape& s, const std::vector<int64_t>& idx) {
    int64_t off = 0, lead = int64_t(out.size() - s.size());
    for (size_t d = 0; d < s.size(); ++d) off = off * s[d] + (s[d] == 1 ? 0 : idx[d + lead]);
    return off;
  };
  std::vector<int64_t> idx(out.size(), 0);
  for (size_t i = 0; i < r.size(); ++i) {
    r[i] = f(va[offset(a.shape(), idx)], vb[offset(b.shape(), idx)]);
    for (int64_t d = int64_t(out.size()) - 1; d >= 0 && ++idx[d] == out[d]; --d) idx[d] = 0;
  }
  return r;
}

TEST_CASE("binary ops broadcast like numpy") {
  std::vector<std::pair<Shape, Shape>> cases = {
      {{3, 4}, {3, 4}}, {{3, 4}, {4}}, {{3, 1}, {1, 4}}, {{2, 3, 4}, {3, 1}}, {{1}, {2, 3}},
      {{}, {5}},        {{2, 1, 5}, {2, 3, 1}}, {{0, 3}, {3}}, {{7}, {1}}};
  for (auto& [sa, sb] : cases) {
    Tensor a = leaf(sa, 1), b = add(leaf(sb, 2), 3.0f).detach();  // keep b away from 0 for div
    Shape out = broadcast_shapes(sa, sb, "test");
    check_close(add(a, b).to_vector(), naive_binary(a, b, out, [](float x, float y) { return x + y; }));
    check_close(sub(a, b).to_vector(), naive_binary(a, b, out, [](float x, float y) { return x - y; }));
    check_close(mul(b, a).to_vector(), naive_binary(b, a, out, [](float x, float y) { return x * y; }));
    check_close(div(a, b).to_vector(), naive_binary(a, b, out, [](float x, float y) { return x / y; }));
    CHECK(add(a, b).shape() == out);
  }
}

TEST_CASE("binary ops: gradients with broadcasting") {
  std::vector<std::pair<Shape, Shape>> cases = {
      {{3, 4}, {3, 4}}, {{3, 4}, {4}}, {{3, 1}, {1, 4}}, {{2, 3, 4}, {3, 1}}, {{}, {2, 2}}};
  for (auto& [sa, sb] : cases) {
    Tensor a = leaf(sa, 3), b = leaf(sb, 4, 0.5f, 2.0f);
    check_gradients([](const std::vector<Tensor>& x) { return add(x[0], x[1]); }, {a, b});
    check_gradients([](const std::vector<Tensor>& x) { return sub(x[0], x[1]); }, {a, b});
    check_gradients([](const std::vector<Tensor>& x) { return mul(x[0], x[1]); }, {a, b});
    check_gradients([](const std::vector<Tensor>& x) { return div(x[0], x[1]); }, {a, b});
  }
}

TEST_CASE("scalar variants and operators") {
  Tensor a = Tensor::from_vector({1, 2, 4}, {3});
  CHECK((a + 1.0f).to_vector() == std::vector<float>{2, 3, 5});
  CHECK((a - 1.0f).to_vector() == std::vector<float>{0, 1, 3});
  CHECK((2.0f * a).to_vector() == std::vector<float>{2, 4, 8});
  CHECK((a / 2.0f).to_vector() == std::vector<float>{0.5f, 1, 2});
  CHECK((1.0f - a).to_vector() == std::vector<float>{0, -1, -3});
  CHECK((4.0f / a).to_vector() == std::vector<float>{4, 2, 1});
  CHECK((-a).to_vector() == std::vector<float>{-1, -2, -4});
  CHECK(eq(a, Tensor::from_vector({1, 0, 4}, {3})).to_vector() == std::vector<float>{1, 0, 1});
  Tensor x = leaf({5}, 9, 1.0f, 3.0f);
  check_gradients([](const std::vector<Tensor>& v) { return add(mul(v[0], 3.0f), 1.0f); }, {x});
  check_gradients([](const std::vector<Tensor>& v) { return sub(rsub(2.0f, v[0]), 1.0f); }, {x});
  check_gradients([](const std::vector<Tensor>& v) { return add(rdiv(2.0f, v[0]), div(v[0], 4.0f)); }, {x});
}

TEST_CASE("binary op errors name the op and both shapes") {
  check_throws_with([] { add(Tensor::zeros({2, 3}), Tensor::zeros({4})); }, {"add", "[2, 3]", "[4]"});
  check_throws_with([] { mul(Tensor::zeros({2}), Tensor()); }, {"mul", "undefined"});
}

TEST_CASE("sum_to reverses broadcasting") {
  Tensor g = Tensor::ones({2, 3, 4});
  CHECK(sum_to(g, {3, 1}).to_vector() == std::vector<float>{8, 8, 8});
  CHECK(sum_to(g, {}).item() == 24);
  CHECK(sum_to(g, {2, 3, 4}).same(g));
}
