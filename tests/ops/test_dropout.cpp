#include "engine/philox.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

TEST_CASE("dropout: the mask is philox::uniform(seed, offset, i) >= p, element by element") {
  const float p = 0.4f, scale = 1.0f / (1.0f - p);
  // 1001 elements: the last Philox block is partly used; 2053: the kernel's 256-block tiles are crossed.
  for (Shape shape : {Shape{7, 143}, Shape{2053}}) {
    CAPTURE(shape_str(shape));
    Tensor x = leaf(shape, 1).detach();
    Generator gen(99);
    gen.take(5);  // a nonzero starting offset
    const uint64_t offset = gen.offset;
    std::vector<float> y = dropout(x, p, true, gen).to_vector(), xs = x.to_vector();
    CHECK(gen.offset == offset + Generator::uniform_blocks(xs.size()));  // one take per call
    size_t mismatches = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      float expected = philox::uniform(99, offset, i) >= p ? xs[i] * scale : 0.0f;
      mismatches += y[i] != expected;
    }
    CHECK(mismatches == 0);
  }
}

TEST_CASE("dropout: same seed, same mask; the stream moves on between calls") {
  Tensor x = Tensor::ones({1000});
  Generator a(7), b(7), c(8);
  std::vector<float> ya = dropout(x, 0.5f, true, a).to_vector();
  CHECK(ya == dropout(x, 0.5f, true, b).to_vector());
  CHECK(ya != dropout(x, 0.5f, true, c).to_vector());
  CHECK(ya != dropout(x, 0.5f, true, a).to_vector());  // second call on `a`: a fresh stretch of the stream

  // The default-generator overload draws from default_generator().
  Generator saved = default_generator();
  manual_seed(123);
  std::vector<float> d1 = dropout(x, 0.5f, true).to_vector();
  manual_seed(123);
  CHECK(d1 == dropout(x, 0.5f, true).to_vector());
  Generator same(123);
  CHECK(d1 == dropout(x, 0.5f, true, same).to_vector());
  default_generator() = saved;
}

TEST_CASE("dropout: kept fraction is about 1 - p, and kept values are scaled by 1 / (1 - p)") {
  const int64_t n = 100000;
  for (float p : {0.1f, 0.5f, 0.9f}) {
    CAPTURE(p);
    Generator gen(2024);
    Tensor x = Tensor::full({n}, 3.0f);
    std::vector<float> y = dropout(x, p, true, gen).to_vector();
    int64_t kept = 0;
    bool scaled = true;
    for (float v : y) {
      if (v != 0) ++kept;
      if (v != 0 && std::fabs(v - 3.0f / (1.0f - p)) > 1e-5f) scaled = false;
    }
    // The kept count is Binomial(n, 1 - p): its std is at most 158; allow 6 of them.
    CHECK(std::fabs(double(kept) - double(n) * (1 - p)) < 950);
    CHECK(scaled);
  }
}

TEST_CASE("dropout: eval and p == 0 are the identity; p == 1 drops everything") {
  Tensor x = leaf({3, 4}, 3);
  Generator gen(5);
  CHECK(dropout(x, 0.5f, false, gen).same(x));
  CHECK(dropout(x, 0.0f, true, gen).same(x));
  CHECK(gen.offset == 0);  // no randomness consumed
  Tensor y = dropout(x, 1.0f, true, gen);
  CHECK(y.to_vector() == std::vector<float>(12, 0.0f));
  sum(y).backward();
  CHECK(x.grad().to_vector() == std::vector<float>(12, 0.0f));
  CHECK(dropout(Tensor::zeros({0}), 0.5f, true, gen).numel() == 0);
}

TEST_CASE("dropout: the gradient is the same mask times the scale") {
  const float p = 0.3f, scale = 1.0f / (1.0f - p);
  Tensor x = leaf({5, 41}, 4);
  Generator gen(31);
  gen.take(3);
  const uint64_t offset = gen.offset;
  Tensor y = dropout(x, p, true, gen);
  Generator wg(77);
  Tensor g = Tensor::randn(x.shape(), wg);
  y.backward(g);
  std::vector<float> gx = x.grad().to_vector(), gs = g.to_vector(), expected(gx.size());
  for (size_t i = 0; i < gx.size(); ++i) expected[i] = philox::uniform(31, offset, i) >= p ? gs[i] * scale : 0.0f;
  check_close(gx, expected, 1e-6, 0);
  // And finite differences agree (the mask is fixed by the generator's state).
  check_gradients([](const std::vector<Tensor>& v) {
    Generator fixed(8);
    return dropout(v[0], 0.5f, true, fixed);
  }, {leaf({4, 6}, 5)});
}

TEST_CASE("dropout: p outside [0, 1] is an error") {
  Tensor x = Tensor::ones({2, 3});
  check_throws_with([&] { dropout(x, -0.1f, true); }, {"dropout", "[0, 1]", "-0.1", "[2, 3]"});
  check_throws_with([&] { dropout(x, 1.5f, false); }, {"dropout", "1.5"});
  check_throws_with([&] { dropout(x, std::nanf(""), true); }, {"dropout", "nan"});
}
