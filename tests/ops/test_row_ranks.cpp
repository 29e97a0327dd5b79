// row_ranks against a stable sort, with ties; and what normal_cdf's tails give (the gate's probabilities).
#include <algorithm>
#include <numeric>

#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

TEST_CASE("row_ranks: each entry's place in its row sorted descending, ties in column order (a stable sort)") {
  Generator gen(3);
  for (auto [R, C] : {std::pair<int64_t, int64_t>{1, 1}, {4, 3}, {7, 5}, {3, 33}, {0, 4}}) {
    CAPTURE(R);
    CAPTURE(C);
    // Values from a few levels, so rows hold ties.
    std::vector<float> v(size_t(R * C));
    for (float& x : v) x = float(gen.randint(4)) - 1.5f;
    Tensor x = Tensor::from_vector(v, {R, C});
    x.set_requires_grad(true);
    Tensor ranks = row_ranks(x);
    CHECK(!ranks.requires_grad());
    CHECK(ranks.shape() == Shape{R, C});
    std::vector<float> got = ranks.to_vector();
    for (int64_t r = 0; r < R; ++r) {
      std::vector<int64_t> order(static_cast<size_t>(C));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t a, int64_t b) { return v[size_t(r * C + a)] > v[size_t(r * C + b)]; });
      for (int64_t k = 0; k < C; ++k) CHECK(got[size_t(r * C + order[size_t(k)])] == float(k));
    }
  }
  check_throws_with([] { row_ranks(Tensor::zeros({2, 3, 4})); }, {"row_ranks", "[R, C]", "[2, 3, 4]"});
}

TEST_CASE("normal_cdf: tails without cancellation, 1/2 at 0") {
  CHECK(normal_cdf(Tensor::zeros({1})).item() == 0.5f);
  CHECK(normal_cdf(Tensor::full({1}, -10.0f)).item() == doctest::Approx(7.6198530241604696e-24).epsilon(1e-5));
  CHECK(normal_cdf(Tensor::full({1}, 10.0f)).item() == 1.0f);
}
