// Reductions on sizes where float accumulation order matters: long rows, tall middle dims, full sums. Checked
// against double references with the error bounds the kernels state (ops/cpu/vec_impl.h, ops/cpu/reduce.cpp),
// and for the same bits whatever the thread count.
#include <omp.h>

#include <cmath>
#include <vector>

#include "tests/testing.h"

using namespace msmix;

namespace {

// [outer, D, inner] -> [outer, inner] sums in double, and the sums of |x| for the error bound.
void reference(const std::vector<float>& x, int64_t outer, int64_t D, int64_t inner, std::vector<double>& sum,
               std::vector<double>& abs_sum) {
  sum.assign(size_t(outer * inner), 0.0);
  abs_sum.assign(sum.size(), 0.0);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t d = 0; d < D; ++d)
      for (int64_t i = 0; i < inner; ++i) {
        const float v = x[size_t((o * D + d) * inner + i)];
        sum[size_t(o * inner + i)] += v;
        abs_sum[size_t(o * inner + i)] += std::fabs(v);
      }
}

// Every output within rel * sum |x| (+ half an ulp of the float result) of the double sum.
void check_bound(const Tensor& got, const std::vector<double>& sum, const std::vector<double>& abs_sum, double rel) {
  std::vector<float> g = got.to_vector();
  REQUIRE(g.size() == sum.size());
  for (size_t i = 0; i < g.size(); ++i) {
    CAPTURE(i);
    CHECK(std::fabs(g[i] - sum[i]) <= rel * abs_sum[i] + 6e-8 * std::fabs(sum[i]));
  }
}

// The op at 1 thread and at 2 threads: the same bits (the work split depends only on the sizes).
Tensor sum_same_for_any_threads(const Tensor& x, const std::vector<int64_t>& dims) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  Tensor one = sum(x, dims);
  omp_set_num_threads(2);
  Tensor two = sum(x, dims);
  omp_set_num_threads(saved);
  CHECK(one.to_vector() == two.to_vector());
  return two;
}

}  // namespace

TEST_CASE("sum over long last dims: blocked float sums within 2.2e-6 of sum |x|, any thread count") {
  Generator gen(21);
  for (auto [outer, D] : std::vector<std::pair<int64_t, int64_t>>{{3, 100003}, {2, (1 << 17) + 5}, {600, 1025}}) {
    CAPTURE(D);
    Tensor x = add(Tensor::randn({outer, D}, gen), 0.5f);
    std::vector<double> s, a;
    reference(x.to_vector(), outer, D, 1, s, a);
    check_bound(sum_same_for_any_threads(x, {1}), s, a, 2.2e-6);
  }
  // 2^24 + 1000 ones, summed whole: a float running sum would stop at 2^24.
  Tensor ones = Tensor::ones({(1 << 24) + 1000});
  CHECK(sum_same_for_any_threads(ones, {}).item() == float((1 << 24) + 1000));
}

TEST_CASE("sum over middle and leading dims: row groups keep the error to 64 terms, any thread count") {
  Generator gen(22);
  // [D, inner] slabs with one or a few outer items; inner widths around the column chunks. Few slabs split
  // the rows among the threads, many split the columns: [6, 300, 70] takes the column split at 1 thread (4
  // tasks wanted) and the row split at 2 (8 wanted), so the thread check also checks both give the same bits.
  for (Shape shape : std::vector<Shape>{{5000, 37}, {4096, 1024}, {3, 4099, 5}, {2, 700, 1500}, {6, 300, 70}}) {
    CAPTURE(shape_str(shape));
    Tensor x = add(Tensor::randn(shape, gen), 1.0f);
    const int64_t dim = shape.size() == 2 ? 0 : 1;
    const int64_t outer = dim == 0 ? 1 : shape[0], D = shape[size_t(dim)], inner = shape.back();
    std::vector<double> s, a;
    reference(x.to_vector(), outer, D, inner, s, a);
    // Each group of 64 rows is a float sum (63 roundings); groups are added in double.
    check_bound(sum_same_for_any_threads(x, {dim}), s, a, 64 * 6e-8);
  }
  // 2^25 then 4095 ones down each column: a float running sum drops every 1 (the ulp at 2^25 is 4), off by
  // 4095; the first group loses its 63 ones and the rest arrive, within the bound (64 * 2^-24 * 2^25 = 128).
  std::vector<float> col(4096 * 3, 1.0f);
  col[0] = col[1] = col[2] = 33554432.0f;
  std::vector<float> got = sum(Tensor::from_vector(col, {4096, 3}), {0}).to_vector();
  for (float g : got) CHECK(std::fabs(double(g) - (33554432.0 + 4095)) <= 128);
}

TEST_CASE("max over a tall leading dim, with a NaN column") {
  Generator gen(23);
  std::vector<float> v = Tensor::randn({300, 2500}, gen).to_vector();
  v[size_t(17 * 2500 + 1234)] = NAN;
  Tensor x = Tensor::from_vector(v, {300, 2500});
  std::vector<float> got = max(x, {0}).to_vector(), want(2500, -INFINITY);
  for (int64_t d = 0; d < 300; ++d)
    for (int64_t i = 0; i < 2500; ++i) want[size_t(i)] = std::max(want[size_t(i)], v[size_t(d * 2500 + i)]);
  want[1234] = NAN;
  for (size_t i = 0; i < want.size(); ++i) {
    CAPTURE(i);
    if (std::isnan(want[i])) CHECK(std::isnan(got[i]));
    else CHECK(got[i] == want[i]);
  }
}
