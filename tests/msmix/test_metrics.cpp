// MMSA metrics on hand-computed cases (values worked out by hand in the comments).
#include <doctest/doctest.h>

#include <cmath>

#include "msmix/metrics.h"
#include "tests/testing.h"

using namespace msmix;

TEST_CASE("MOSI metrics: zero labels, half-to-even rounding, clipping") {
  std::vector<float> p = {2.5f, 0.5f, -1.5f, 0.0f, -0.2f, 3.7f};
  std::vector<float> t = {2.0f, 0.0f, -2.0f, 1.0f, -0.4f, 2.6f};
  Metrics m = mosi_metrics(p, t);
  // Has0: t >= 0 and p >= 0 agree everywhere (the 0 label and the 0.0 prediction both count positive).
  CHECK(metric(m, "Has0_acc_2") == 1.0);
  CHECK(metric(m, "Has0_F1_score") == 1.0);
  // Non0 drops sample 1 (label 0); prediction 0.0 is not > 0, so sample 3 is wrong: 4/5; both classes F1 0.8.
  CHECK(metric(m, "Non0_acc_2") == 0.8);
  CHECK(metric(m, "Non0_F1_score") == 0.8);
  // Acc-7: 2.5 -> 2 (half to even), 0.5 -> 0, -1.5 -> -2, 3.7 clips to 3; only sample 3 (0 vs 1) misses.
  CHECK(metric(m, "Mult_acc_7") == 0.8333);
  // Acc-5: clip to [-2, 2]: 3.7 -> 2 and 2.6 -> 2 agree; again only sample 3 misses.
  CHECK(metric(m, "Mult_acc_5") == 0.8333);
  CHECK(metric(m, "MAE") == 0.6333);  // (0.5 + 0.5 + 0.5 + 1 + 0.2 + 1.1) / 6
  CHECK(metric(m, "Corr") == 0.9318);  // numpy.corrcoef
  std::vector<std::string> names;
  for (auto& [n, v] : m) names.push_back(n);
  CHECK(names == std::vector<std::string>{"Has0_acc_2", "Has0_F1_score", "Non0_acc_2", "Non0_F1_score", "Mult_acc_5",
                                          "Mult_acc_7", "MAE", "Corr"});
}

TEST_CASE("MOSI metrics: rounding ties go to even on both sides") {
  // 1.5 -> 2 and 2.5 -> 2: equal classes; 0.5 -> 0 and -0.5 -> -0: equal; 3.5 clips to 3.
  std::vector<float> p = {1.5f, 0.5f, 3.5f, -2.5f};
  std::vector<float> t = {2.5f, -0.5f, 3.0f, -1.5f};
  CHECK(metric(mosi_metrics(p, t), "Mult_acc_7") == 1.0);
  // With clip 2, -2.5 -> -2 and -1.5 -> -2 as well.
  CHECK(metric(mosi_metrics(p, t), "Mult_acc_5") == 1.0);
}

TEST_CASE("constant predictions: Corr is NaN, the rest is defined") {
  std::vector<float> p(4, 0.3f), t = {1, -1, 2, -2};
  Metrics m = mosi_metrics(p, t);
  CHECK(std::isnan(metric(m, "Corr")));
  CHECK(metric(m, "Has0_acc_2") == 0.5);
  // All predicted positive: class 1 has F1 2*2/(4+2) = 2/3 (support 2), class 0 has F1 0.
  CHECK(metric(m, "Has0_F1_score") == 0.3333);
}

TEST_CASE("SIMS metrics: left-open right-closed bins on clipped values") {
  std::vector<float> p = {0.05f, -0.05f, 0.95f, -0.8f, 0.3f, 1.4f, -0.1f, 0.1f};
  std::vector<float> t = {0.2f, -0.3f, 0.6f, -1.2f, 0.0f, 0.9f, -0.1f, 0.12f};
  Metrics m = sims_metrics(p, t);
  CHECK(metric(m, "Mult_acc_2") == 0.875);   // only sample 4 (0.3 vs label 0.0, which is negative) misses
  CHECK(metric(m, "F1_score") == 0.873);     // (4 * 8/9 + 4 * 6/7) / 8
  CHECK(metric(m, "Mult_acc_3") == 0.5);     // -0.1 falls in (-1.01, -0.1], 0.1 in (-0.1, 0.1]
  CHECK(metric(m, "Mult_acc_5") == 0.375);
  CHECK(metric(m, "MAE") == doctest::Approx(0.17125).epsilon(1e-3));  // on clipped values: 1.4 -> 1, -1.2 -> -1
  CHECK(metric(m, "Corr") == 0.9543);
}

TEST_CASE("weighted F1 and Pearson building blocks") {
  // sklearn: f1_score([0, 0, 1, 1, 1], [0, 1, 1, 1, 0], average='weighted') = (2 * 0.5 + 3 * 2/3) / 5 = 0.6
  CHECK(weighted_f1({0, 0, 1, 1, 1}, {0, 1, 1, 1, 0}) == doctest::Approx(0.6));
  // A class only predicted (never true) has weight 0.
  CHECK(weighted_f1({1, 1}, {0, 1}) == doctest::Approx(2.0 / 3));
  CHECK(pearson({1, 2, 3}, {2, 4, 6}) == doctest::Approx(1.0));
  CHECK(pearson({1, 2, 3}, {3, 2, 1}) == doctest::Approx(-1.0));
  CHECK(round4(0.12344) == 0.1234);
  CHECK(round4(0.12346) == 0.1235);
  CHECK(std::isnan(round4(std::nan(""))));
}

TEST_CASE("metrics refuse bad input with a clear message") {
  msmix::testing::check_throws_with([] { mosi_metrics({1, 2}, {1}); }, {"mosi_metrics", "2 predictions", "1 labels"});
  msmix::testing::check_throws_with([] { mosi_metrics({NAN}, {1}); }, {"non-finite", "sample 0"});
  msmix::testing::check_throws_with([] { sims_metrics({}, {}); }, {"no samples"});
  CHECK(metric(dataset_metrics("sims", {0.5f, -0.5f}, {0.4f, -0.6f}), "Mult_acc_2") == 1.0);
}
