#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

// Naive reference: for each element, find its output slot by zeroing the reduced coordinates.
static std::vector<float> naive_reduce(const Tensor& x, const std::vector<int64_t>& dims, bool is_max) {
  const Shape& s = x.shape();
  Shape out = s;
  for (int64_t d : dims) out[d] = 1;
  std::vector<float> r(shape_numel(out), is_max ? -INFINITY : 0.0f), v = x.to_vector();
  std::vector<int64_t> idx(s.size(), 0);
  for (size_t i = 0; i < v.size(); ++i) {
    int64_t o = 0;
    for (size_t d = 0; d < s.size(); ++d) o = o * out[d] + (out[d] == 1 ? 0 : idx[d]);
    r[o] = is_max ? std::max(r[o], v[i]) : r[o] + v[i];
    for (int64_t d = int64_t(s.size()) - 1; d >= 0 && ++idx[d] == s[d]; --d) idx[d] = 0;
  }
  return r;
}

TEST_CASE("sum, mean, max over any dims against a naive reference") {
  Tensor x = leaf({3, 4, 5, 2}, 11);
  std::vector<std::vector<int64_t>> dim_sets = {{0}, {1}, {3}, {-1}, {0, 2}, {1, 2}, {0, 1, 2, 3}, {0, 3}, {}};
  for (auto& dims : dim_sets) {
    CAPTURE(shape_str(dims));
    std::vector<int64_t> resolved;
    if (dims.empty()) resolved = {0, 1, 2, 3};
    for (int64_t d : dims) resolved.push_back(d < 0 ? d + 4 : d);
    std::vector<float> ref_sum = naive_reduce(x, resolved, false), ref_max = naive_reduce(x, resolved, true);
    check_close(sum(x, dims, true).to_vector(), ref_sum, 1e-5, 1e-5);
    check_close(max(x, dims, true).to_vector(), ref_max);
    int64_t count = x.numel() / int64_t(ref_sum.size());
    for (float& v : ref_sum) v /= float(count);
    check_close(mean(x, dims, true).to_vector(), ref_sum, 1e-5, 1e-6);
    CHECK(sum(x, dims, false).numel() == int64_t(ref_max.size()));
  }
  CHECK(sum(x, {1, 2}, false).shape() == Shape{3, 2});
  CHECK(sum(x, {1, 2}, true).shape() == Shape{3, 1, 1, 2});
  CHECK(sum(x).dim() == 0);
}

TEST_CASE("reductions: gradients") {
  Tensor x = leaf({3, 4, 2}, 12);
  check_gradients([](const std::vector<Tensor>& v) { return sum(v[0], {1}); }, {x});
  check_gradients([](const std::vector<Tensor>& v) { return sum(v[0], {0, 2}, true); }, {x});
  check_gradients([](const std::vector<Tensor>& v) { return mean(v[0], {-1}); }, {x});
  check_gradients([](const std::vector<Tensor>& v) { return mean(v[0]); }, {x});
  check_gradients([](const std::vector<Tensor>& v) { return max(v[0], {1}); }, {x});
  check_gradients([](const std::vector<Tensor>& v) { return var(v[0], {1}); }, {x});
  check_gradients([](const std::vector<Tensor>& v) { return var(v[0], {0, 2}, false, true); }, {x});
}

TEST_CASE("max shares the grad among ties; var matches the two-pass formula") {
  Tensor x = Tensor::from_vector({1, 3, 3, 2}, {1, 4}).set_requires_grad();
  sum(max(x, {1})).backward();
  CHECK(x.grad().to_vector() == std::vector<float>{0, 0.5f, 0.5f, 0});
  Tensor y = Tensor::from_vector({1, 2, 3, 4}, {4});
  CHECK(var(y, {0}).item() == doctest::Approx(5.0 / 3));
  CHECK(var(y, {0}, false).item() == doctest::Approx(1.25));
}

TEST_CASE("reduction errors and empty inputs") {
  CHECK(sum(Tensor::zeros({0, 3}), {0}).to_vector() == std::vector<float>{0, 0, 0});
  check_throws_with([] { max(Tensor::zeros({0, 3}), {0}); }, {"max", "empty"});
  check_throws_with([] { sum(Tensor::zeros({2, 3}), {2}); }, {"sum", "dim 2"});
  check_throws_with([] { sum(Tensor::zeros({2, 3}), {1, -1}); }, {"sum", "repeated"});
  check_throws_with([] { var(Tensor::zeros({1, 3}), {0}); }, {"var"});
}
