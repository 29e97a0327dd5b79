#include <cmath>
#include <vector>

#include "ops/cpu/fast_math.h"
#include "tests/testing.h"

using namespace msmix;

TEST_CASE("vectorised exp: both builds against std::exp, tails and special values") {
  for (int64_t n : {0, 1, 3, 4, 7, 8, 9, 17, 1000}) {
    CAPTURE(n);
    std::vector<float> x(n), y_sse(n), y_any(n);
    for (int64_t i = 0; i < n; ++i) x[i] = -90.0f + 180.0f * float(i) / float(std::max<int64_t>(n - 1, 1));
    double s_sse = cpu::exp_shift_sum_vec<cpu::Vec4, cpu::IVec4>(x.data(), y_sse.data(), n, 0.5f);
    double s_any = cpu::exp_shift_sum(x.data(), y_any.data(), n, 0.5f);  // AVX2 where the CPU has it
    double ref_sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      double ref = std::exp(double(x[i]) + 0.5);
      ref_sum += float(ref);
      if (ref > 3.4e38) {
        CHECK(std::isinf(y_sse[i]));
        CHECK(std::isinf(y_any[i]));
      } else if (ref > 1.2e-38) {  // normal range: a few ulp
        CHECK(std::fabs(y_sse[i] - ref) <= 5e-7 * ref);
        CHECK(std::fabs(y_any[i] - ref) <= 5e-7 * ref);
      }
    }
    if (std::isfinite(ref_sum) && n > 0) {
      CHECK(s_sse == doctest::Approx(ref_sum).epsilon(1e-6));
      CHECK(s_any == doctest::Approx(ref_sum).epsilon(1e-6));
    }
  }
  std::vector<float> special = {-INFINITY, INFINITY, NAN, 0.0f, -0.0f, 88.7f, -87.0f, 1e-8f, 2.0f}, out(special.size());
  cpu::exp_array(special.data(), out.data(), int64_t(special.size()));
  CHECK(out[0] == 0.0f);
  CHECK(std::isinf(out[1]));
  CHECK(std::isnan(out[2]));
  CHECK(out[3] == 1.0f);
  CHECK(out[4] == 1.0f);
  CHECK(out[8] == doctest::Approx(std::exp(2.0)).epsilon(1e-6));
}
