#include <cstring>

#include "engine/philox.h"
#include "ops/cpu/dropout.h"
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

TEST_CASE("dropout: a NaN or inf input stays NaN where dropped, as PyTorch's x * mask * scale") {
  // 1031 elements: every build's full groups and a tail; p = 1 drops all of them.
  std::vector<float> v(1031, 1.0f);
  v[0] = std::nanf(""), v[9] = INFINITY, v[500] = -INFINITY, v[1030] = std::nanf("");
  Tensor x = Tensor::from_vector(v, {1031});
  Generator gen(3);
  std::vector<float> y = dropout(x, 1.0f, true, gen).to_vector();
  for (size_t i : {size_t(0), size_t(9), size_t(500), size_t(1030)}) {
    CAPTURE(i);
    CHECK(std::isnan(y[i]));  // nan * 0 and inf * 0
  }
  CHECK(y[1] == 0.0f);
  CHECK(y[1029] == 0.0f);
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

namespace {

// Elements where a kernel build differs from the scalar reference philox::uniform(seed, offset, i) >= p.
// x holds stream elements [first, first + x.size()).
size_t count_mismatches(cpu::DropoutIsa isa, const std::vector<float>& x, float p, uint64_t seed, uint64_t offset,
                        bool in_place = false, int64_t first = 0) {
  const float scale = p < 1 ? 1.0f / (1.0f - p) : 0.0f;
  std::vector<float> y = x;
  cpu::dropout_apply_isa(isa, in_place ? y.data() : x.data(), y.data(), first, int64_t(x.size()), p, scale, seed,
                         offset);
  size_t mismatches = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const float expected = x[i] * (philox::uniform(seed, offset, uint64_t(first) + i) >= p ? scale : 0.0f);
    mismatches += std::memcmp(&y[i], &expected, sizeof(float)) != 0;  // bits: +0, -0 and NaN alike
  }
  return mismatches;
}

std::vector<cpu::DropoutIsa> supported_isas() {
  std::vector<cpu::DropoutIsa> out;
  for (auto isa : {cpu::DropoutIsa::baseline, cpu::DropoutIsa::avx2, cpu::DropoutIsa::avx512})
    if (cpu::dropout_isa_supported(isa)) out.push_back(isa);
    else MESSAGE("this CPU has no " << cpu::isa_name(isa) << ": that dropout build is not tested");
  return out;
}

}  // namespace

TEST_CASE("dropout kernels: every build gives the scalar reference's bits on a large odd-sized mask") {
  // 300,007 elements: many OpenMP chunks of vector groups, then a tail shorter than a group and a last,
  // partly used Philox block. Inputs include negative values, zeros, a NaN and infinities.
  const size_t n = 300007;
  std::vector<float> x = leaf({int64_t(n)}, 17).detach().to_vector();
  x[5] = std::nanf("");
  x[1000] = INFINITY;
  x[n - 1] = -INFINITY;
  x[77] = -0.0f;
  for (cpu::DropoutIsa isa : supported_isas()) {
    CAPTURE(cpu::isa_name(isa));
    for (float p : {0.1f, 0.5f, 0.9f}) {
      CAPTURE(p);
      CHECK(count_mismatches(isa, x, p, 0x0123456789ABCDEFull, 12345) == 0);
    }
    CHECK(count_mismatches(isa, x, 0.25f, 42, 0, /*in_place=*/true) == 0);
    CHECK(count_mismatches(isa, x, 0.0f, 7, 3) == 0);  // keeps everything (scale 1)
    CHECK(count_mismatches(isa, x, 1.0f, 7, 3) == 0);  // drops everything
  }
}

TEST_CASE("dropout kernels: p on the 2^-24 grid, the counter's low word wrapping, short inputs") {
  std::vector<float> x = leaf({4099}, 18).detach().to_vector();
  for (cpu::DropoutIsa isa : supported_isas()) {
    CAPTURE(cpu::isa_name(isa));
    // p equal to some element's own draw (that element sits on the boundary: kept, as uniform >= p), its float
    // neighbours, and tiny p: the kernels' integer threshold must agree with to_unit(w) >= p.
    std::vector<float> ps = {3.0f / 16777216.0f, std::nextafter(1.0f, 0.0f), 1e-30f};
    for (uint64_t i : {0, 1, 2, 3, 37, 2050, 4098}) {
      const float u = philox::uniform(5, 100, i);
      for (float p : {u, std::nextafter(u, 0.0f), std::nextafter(u, 1.0f)}) ps.push_back(p);
    }
    for (float p : ps) {
      CAPTURE(p);
      CHECK(count_mismatches(isa, x, p, 5, 100) == 0);
    }
    // Offsets whose blocks cross 2^32 and 2^33 inside the draw: the counter's high word changes mid-group.
    for (uint64_t offset : {(uint64_t(1) << 32) - 500, (uint64_t(1) << 33) - 3, ~uint64_t(0) - 2000}) {
      CAPTURE(offset);
      CHECK(count_mismatches(isa, x, 0.3f, 99, offset) == 0);
    }
    for (size_t n : {size_t(0), size_t(1), size_t(3), size_t(31), size_t(33), size_t(65)}) {
      CAPTURE(n);
      CHECK(count_mismatches(isa, std::vector<float>(x.begin(), x.begin() + long(n)), 0.5f, 1, 2) == 0);
    }
  }
}

TEST_CASE("dropout kernels: a slice [first, first + n) of the stream, as the fused attention applies it") {
  std::vector<float> x = leaf({3001}, 19).detach().to_vector();
  for (cpu::DropoutIsa isa : supported_isas()) {
    CAPTURE(cpu::isa_name(isa));
    // Starts inside a Philox block, inside a vector group, on a group; lengths shorter than a group, inside
    // one group, and across many.
    for (int64_t first : {int64_t(0), int64_t(1), int64_t(7), int64_t(63), int64_t(64), int64_t(375 * 17 + 5)}) {
      for (size_t n : {size_t(2), size_t(30), size_t(375), size_t(3001)}) {
        CAPTURE(first);
        CAPTURE(n);
        CHECK(count_mismatches(isa, std::vector<float>(x.begin(), x.begin() + long(n)), 0.3f, 3, 1000, false, first) ==
              0);
      }
    }
  }
  // The serial entry point (best build) gives the same as the reference.
  const int64_t first = 1234567;
  std::vector<float> y(x.size());
  cpu::dropout_apply_range(x.data(), y.data(), first, int64_t(x.size()), 0.2f, 1.25f, 11, 22);
  size_t mismatches = 0;
  for (size_t i = 0; i < x.size(); ++i)
    mismatches += y[i] != (philox::uniform(11, 22, uint64_t(first) + i) >= 0.2f ? x[i] * 1.25f : 0.0f);
  CHECK(mismatches == 0);
}
