#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

TEST_CASE("reshape, flatten, squeeze, unsqueeze share storage") {
  Tensor x = Tensor::arange(24);
  Tensor r = reshape(x, {2, -1, 4});
  CHECK(r.shape() == Shape{2, 3, 4});
  CHECK(r.data() == x.data());
  CHECK(flatten(r, 1).shape() == Shape{2, 12});
  CHECK(unsqueeze(r, -1).shape() == Shape{2, 3, 4, 1});
  CHECK(squeeze(unsqueeze(r, 1), 1).shape() == Shape{2, 3, 4});
  check_throws_with([&] { reshape(x, {5, -1}); }, {"reshape", "[24]", "[5, -1]"});
  check_throws_with([&] { squeeze(r, 0); }, {"squeeze", "size 2"});
  Tensor a = leaf({2, 6}, 1);
  check_gradients([](const std::vector<Tensor>& v) { return mul(reshape(v[0], {3, 4}), Tensor::arange(4)); }, {a});
}

TEST_CASE("permute and transpose against index arithmetic") {
  Tensor x = Tensor::arange(2 * 3 * 4);
  Tensor p = permute(reshape(x, {2, 3, 4}), {2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  std::vector<float> v = p.to_vector();
  for (int k = 0; k < 4; ++k)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) CHECK(v[(k * 2 + i) * 3 + j] == float(i * 12 + j * 4 + k));
  Tensor t = transpose(reshape(x, {6, 4}), 0, 1);
  CHECK(t.to_vector()[1] == 4);
  Tensor a = leaf({2, 3, 4}, 2);
  check_gradients([](const std::vector<Tensor>& v) { return permute(v[0], {1, 2, 0}); }, {a});
  check_throws_with([&] { permute(a, {0, 0, 1}); }, {"permute", "repeat"});
}

TEST_CASE("expand broadcasts and its grad sums back") {
  Tensor x = Tensor::from_vector({1, 2, 3}, {3, 1});
  Tensor e = expand(x, {2, 3, 2});
  CHECK(e.to_vector() == std::vector<float>{1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3});
  CHECK(expand(x, {-1, 4}).shape() == Shape{3, 4});
  check_throws_with([&] { expand(x, {2, 2}); }, {"expand", "[3, 1]"});
  Tensor a = leaf({3, 1}, 3);
  check_gradients([](const std::vector<Tensor>& v) { return expand(v[0], {2, 3, 5}); }, {a});
}
