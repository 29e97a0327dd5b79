// The vectorised kernel table (ops/cpu/vec_kernels.h): every build this CPU runs (SSE2 always, AVX2 + FMA when
// present) against double-precision references, on sizes around the vector widths, the 4-vector unroll and the
// summation block (odd sizes exercise every tail path).
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "ops/cpu/fast_math.h"
#include "tests/testing.h"

using namespace msmix;

namespace {

std::vector<const cpu::VecKernels*> builds() {
  std::vector<const cpu::VecKernels*> b = {&cpu::vec_kernels_sse2()};
  if (const cpu::VecKernels* avx2 = cpu::vec_kernels_avx2()) b.push_back(avx2);
  else MESSAGE("this CPU has no AVX2 + FMA: only the SSE2 build is tested");
  return b;
}

const std::vector<int64_t> kSizes = {0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 31, 33, 63, 65, 511, 513, 1023, 1024, 1025, 3001};

std::vector<float> random_vector(int64_t n, uint32_t seed, float scale = 1, float shift = 0) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(shift, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

}  // namespace

TEST_CASE("vec kernels: the dispatch picks AVX2 exactly when the CPU has it") {
  const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  CHECK((cpu::vec_kernels_avx2() != nullptr) == has);
  CHECK(std::string(cpu::vec_kernels().name) == (has ? "avx2" : "sse2"));
}

TEST_CASE("vec kernels: blocked sum against a double reference, within its stated bound") {
  for (const cpu::VecKernels* k : builds()) {
    CAPTURE(k->name);
    for (int64_t n : kSizes) {
      CAPTURE(n);
      std::vector<float> x = random_vector(n, uint32_t(n) + 1, 1.0f, 0.3f);
      double ref = 0, abs_sum = 0;
      for (float v : x) ref += v, abs_sum += std::fabs(v);
      // The bound from vec_impl.h: (32 + U + 2) * 2^-24 * sum |x| < 2.2e-6 * sum |x|.
      CHECK(std::fabs(k->sum(x.data(), n) - ref) <= 2.2e-6 * abs_sum + 1e-30);
    }
    // 2^24 + 1000 ones: a float running sum stalls at 2^24 (adding 1 no longer changes it); blocks do not.
    std::vector<float> ones((1 << 24) + 1000, 1.0f);
    CHECK(k->sum(ones.data(), int64_t(ones.size())) == double(ones.size()));
    // A long row with a large mean: float accumulation would lose about n * 2^-24 relative; this stays close.
    std::vector<float> big = random_vector(1 << 22, 7, 1.0f, 100.0f);
    double ref = 0;
    for (float v : big) ref += v;
    CHECK(std::fabs(k->sum(big.data(), int64_t(big.size())) - ref) <= 1e-6 * std::fabs(ref));
  }
}

TEST_CASE("vec kernels: add_into and the elementwise add, sub, mul, div") {
  for (const cpu::VecKernels* k : builds()) {
    CAPTURE(k->name);
    for (int64_t n : kSizes) {
      CAPTURE(n);
      std::vector<float> a = random_vector(n, 1), b = random_vector(n, 2), out(a.size()), want(a.size());
      for (auto [kernel, op] : {std::pair{k->add, '+'}, std::pair{k->sub, '-'}, std::pair{k->mul, '*'},
                                std::pair{k->div, '/'}}) {
        CAPTURE(op);
        for (size_t i = 0; i < a.size(); ++i)
          want[i] = op == '+' ? a[i] + b[i] : op == '-' ? a[i] - b[i] : op == '*' ? a[i] * b[i] : a[i] / b[i];
        kernel(a.data(), b.data(), out.data(), n);
        CHECK(out == want);  // one correctly rounded operation per element: exact
      }
      for (size_t i = 0; i < a.size(); ++i) want[i] = a[i] + b[i];
      k->add_into(a.data(), b.data(), n);
      CHECK(a == want);
    }
  }
}

TEST_CASE("vec kernels: layer norm row forward and backward against double references") {
  for (const cpu::VecKernels* k : builds()) {
    CAPTURE(k->name);
    for (int64_t C : kSizes) {
      if (C == 0) continue;
      CAPTURE(C);
      // A large mean over a small spread: a one-pass E[x^2] - E[x]^2 in float would cancel to noise.
      std::vector<float> x = random_vector(C, 3, 0.5f, 1000.0f), w = random_vector(C, 4), b = random_vector(C, 5);
      std::vector<float> g = random_vector(C, 6);
      const float eps = 1e-5f;
      double m = 0, v = 0;
      for (float e : x) m += e;
      m /= double(C);
      for (float e : x) v += (e - m) * (e - m);
      v /= double(C);
      const double rs = 1 / std::sqrt(v + eps);
      std::vector<float> y(C), want(C), xhat(C);
      float mean, rstd;
      k->layer_norm_row(x.data(), w.data(), b.data(), y.data(), C, eps, &mean, &rstd);
      for (int64_t c = 0; c < C; ++c) {
        xhat[c] = float((x[c] - m) * rs);
        want[c] = float((x[c] - m) * rs * w[c] + b[c]);
      }
      CHECK(mean == doctest::Approx(m).epsilon(1e-7));
      CHECK(rstd == doctest::Approx(rs).epsilon(1e-4));
      testing::check_close(y, want, 1e-3, 1e-3, "y");  // x - mean loses log2(2000) bits at mean 1000
      k->layer_norm_row(x.data(), nullptr, nullptr, y.data(), C, eps, &mean, &rstd);
      testing::check_close(y, xhat, 1e-3, 1e-3, "y without affine");

      // gx = rs * (d - mean(d) - xhat * mean(d * xhat)), d = g * w; pw += g * xhat, pb += g. The backward gets
      // the forward's (float) mean and rstd, so the reference uses them too.
      for (int64_t c = 0; c < C; ++c) xhat[c] = float((double(x[c]) - mean) * rstd);
      double sd = 0, sdx = 0;
      for (int64_t c = 0; c < C; ++c) sd += double(g[c]) * w[c], sdx += double(g[c]) * w[c] * xhat[c];
      std::vector<float> gx(C), pw(C, 1.0f), pb(C, 2.0f), want_gx(C), want_pw(C), want_pb(C);
      for (int64_t c = 0; c < C; ++c) {
        want_gx[c] = float(rstd * (double(g[c]) * w[c] - sd / double(C) - double(xhat[c]) * sdx / double(C)));
        want_pw[c] = 1.0f + g[c] * xhat[c];
        want_pb[c] = 2.0f + g[c];
      }
      k->layer_norm_row_backward(x.data(), w.data(), mean, rstd, g.data(), gx.data(), pw.data(), pb.data(), C);
      testing::check_close(gx, want_gx, 1e-3, 1e-4, "gx");
      testing::check_close(pw, want_pw, 1e-3, 1e-4, "partial gweight");
      testing::check_close(pb, want_pb, 1e-6, 1e-6, "partial gbias");
      std::vector<float> gx_only(C);
      k->layer_norm_row_backward(x.data(), w.data(), mean, rstd, g.data(), gx_only.data(), nullptr, nullptr, C);
      CHECK(gx_only == gx);
    }
  }
}

TEST_CASE("vec kernels: softmax and log_softmax rows, masked entries, backward") {
  for (const cpu::VecKernels* k : builds()) {
    CAPTURE(k->name);
    for (int64_t C : kSizes) {
      if (C == 0) continue;
      CAPTURE(C);
      std::vector<float> x = random_vector(C, 8, 3.0f), g = random_vector(C, 9);
      if (C > 2) x[1] = -INFINITY;  // a masked entry: probability exactly 0
      double m = -INFINITY, s = 0;
      for (float e : x) m = std::max(m, double(e));
      for (float e : x) s += std::exp(e - m);
      std::vector<float> p(C), lp(C), want_p(C), want_lp(C);
      for (int64_t c = 0; c < C; ++c) {
        want_p[c] = float(std::exp(x[c] - m) / s);
        want_lp[c] = float(x[c] - m - std::log(s));
      }
      k->softmax_row(x.data(), p.data(), C, false);
      k->softmax_row(x.data(), lp.data(), C, true);
      testing::check_close(p, want_p, 2e-6, 1e-7, "softmax");
      testing::check_close(lp, want_lp, 2e-6, 2e-6, "log_softmax");
      if (C > 2) CHECK(p[1] == 0.0f);
      if (C > 2) CHECK(lp[1] == -INFINITY);

      double sgp = 0, sg = 0;
      for (int64_t c = 0; c < C; ++c) sgp += double(g[c]) * p[c], sg += g[c];
      std::vector<float> gx(C), want(C);
      for (int64_t c = 0; c < C; ++c) want[c] = float(p[c] * (g[c] - sgp));
      k->softmax_row_backward(p.data(), g.data(), gx.data(), C, false);
      testing::check_close(gx, want, 1e-5, 1e-6, "softmax backward");
      for (int64_t c = 0; c < C; ++c) want[c] = float(g[c] - double(p[c]) * sg);
      k->softmax_row_backward(lp.data(), g.data(), gx.data(), C, true);
      testing::check_close(gx, want, 1e-5, 1e-5, "log_softmax backward");
    }
    std::vector<float> masked = {-INFINITY, -INFINITY, -INFINITY}, out(3);
    k->softmax_row(masked.data(), out.data(), 3, false);
    CHECK(std::isnan(out[0]));  // no distribution, as PyTorch
  }
}

TEST_CASE("vec kernels: gelu and its derivative against the erf formula in double") {
  auto ref = [](double v) { return 0.5 * v * std::erfc(-v / std::sqrt(2.0)); };
  auto ref_grad = [](double v) {
    return 0.5 * std::erfc(-v / std::sqrt(2.0)) + v * std::exp(-0.5 * v * v) / std::sqrt(2 * M_PI);
  };
  for (const cpu::VecKernels* k : builds()) {
    CAPTURE(k->name);
    // The stated bounds (fast_gelu_impl.h): about 5e-7 relative everywhere with FMA (x^2 is not rounded before
    // the exp); without it, plus 2^-24 x^2 / 2 from that rounding in the left tail.
    const bool fma = std::string(k->name) == "avx2";
    auto bound = [&](double v) { return fma ? 1e-6 : 2e-6 + 4e-8 * v * v; };
    for (int64_t n : kSizes) {
      CAPTURE(n);
      // A sweep over [-14, 14] covers the fit's whole range [0, 13.2] on both sides and the clamp below it.
      std::vector<float> x(n), y(n), g = random_vector(n, 10), gx(n);
      for (int64_t i = 0; i < n; ++i) x[i] = -14.0f + 28.0f * float(i) / float(std::max<int64_t>(n - 1, 1));
      k->gelu(x.data(), y.data(), n);
      k->gelu_backward(x.data(), g.data(), gx.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const double want = ref(x[i]), want_gx = g[i] * ref_grad(x[i]);
        CAPTURE(x[i]);
        if (std::fabs(want) > 1e-30) CHECK(std::fabs(y[i] - want) <= bound(x[i]) * std::fabs(want));
        else CHECK(std::fabs(y[i]) <= 1e-30);
        CHECK(std::fabs(gx[i] - want_gx) <= 2e-6 * std::fabs(g[i]) * (std::fabs(x[i]) + 1));
      }
    }
    // Dense: 2^18 points over [-11.7, 14] (gelu > 1e-30), through every step of the exp's 2^n and the tail.
    const int64_t n = 1 << 18;
    std::vector<float> x(n), y(n);
    for (int64_t i = 0; i < n; ++i) x[i] = -11.7f + 25.7f * float(i) / float(n - 1);
    k->gelu(x.data(), y.data(), n);
    double worst = 0;  // largest error as a fraction of the bound
    for (int64_t i = 0; i < n; ++i)
      worst = std::max(worst, std::fabs(y[i] - ref(x[i])) / (bound(x[i]) * std::fabs(ref(x[i]))));
    CHECK(worst <= 1.0);
    // NaN propagates; +-0 stay zero; +inf stays; at and below the -13.2 clamp (-100, -inf) the result is that of
    // -13.2, a tiny non-positive number rather than -inf or NaN.
    std::vector<float> special = {NAN, 0.0f, -0.0f, INFINITY, -100.0f, -INFINITY, -13.2f, -13.5f}, out(8);
    k->gelu(special.data(), out.data(), 8);
    CHECK(std::isnan(out[0]));
    CHECK(out[1] == 0.0f);
    CHECK(out[2] == 0.0f);
    CHECK(out[3] == INFINITY);
    for (int i = 4; i < 8; ++i) {
      CAPTURE(special[i]);
      CHECK(out[i] <= 0.0f);
      CHECK(out[i] >= -1e-30f);
      CHECK(out[i] == out[6]);
    }
    // The derivative at the special points: NaN stays NaN; 1 / 2 at 0; 1 at +inf; 0 (to float) far left.
    std::vector<float> ones(8, 1.0f), gout(8);
    k->gelu_backward(special.data(), ones.data(), gout.data(), 8);
    CHECK(std::isnan(gout[0]));
    CHECK(std::fabs(gout[1] - 0.5f) <= 1e-6f);
    CHECK(gout[3] == 1.0f);
    for (int i = 4; i < 8; ++i) CHECK(std::fabs(gout[i]) <= 1e-30f);
  }
}
