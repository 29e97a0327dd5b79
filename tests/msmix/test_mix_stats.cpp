// The mixing diagnostics behind log.jsonl's "mix" object: SASS's candidate count and fallback flag on
// similarity matrices whose answer is known, the per-step statistics of a hand-made MixResult, the epoch
// averages, and that asking for any of it changes no pair and no random draw.
#include <cmath>
#include <set>

#include "msmix/mix_stats.h"
#include "msmix/mixing.h"
#include "msmix/sample_selection.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

// B = 4 samples as unit vectors in every modality: rows equal within a cluster, orthogonal across, so S' is
// 1 within a cluster and 0 across. clusters[i] names sample i's axis.
Representations clustered(const std::vector<int>& clusters) {
  const int64_t B = int64_t(clusters.size());
  std::vector<float> z(size_t(B * 4), 0.0f);
  for (int64_t i = 0; i < B; ++i) z[size_t(i * 4 + clusters[size_t(i)])] = 1.0f;
  Tensor t = Tensor::from_vector(z, {B, 4});
  return {t, t, reshape(t, {B, 2, 2})};
}

}  // namespace

TEST_CASE("mix stats: SASS reports the candidates above delta, the fallback and the pool") {
  // Upper triangle (0,1) (0,2) (0,3) (1,2) (1,3) (2,3); B = 4.
  Tensor s = symmetric(4, {0.9f, 0.1f, 0.41f, 0.4f, 0.0f, 1.0f});
  SelectionStats st;
  // delta 0.4: (0,1), (0,3), (2,3) both ways = 6 >= 4, no fallback.
  CHECK(SampleSelector(0.4f).candidates(s, &st).size() == 6);
  CHECK(st.needed == 4);
  CHECK(st.above_delta == 6);
  CHECK(!st.fallback);
  CHECK(st.pool == 6);
  // delta 0.95: only (2,3) and (3,2) = 2 < 4: fallback to min(2B, 6) = 6 upper entries.
  SampleSelector(0.95f).candidates(s, &st);
  CHECK(st.above_delta == 2);
  CHECK(st.fallback);
  CHECK(st.pool == 6);
  // Exactly B above delta is enough: delta 0.5 leaves (0,1), (2,3) both ways = 4.
  SampleSelector(0.5f).candidates(s, &st);
  CHECK(st.above_delta == 4);
  CHECK(!st.fallback);
  // B = 6 with one pair above 0.95: the fallback pool is 2B = 12 of the 15 upper entries.
  std::vector<float> upper;
  for (int k = 0; k < 15; ++k) upper.push_back(float((k * 7) % 15) / 14.0f);
  SampleSelector(0.95f).candidates(symmetric(6, upper), &st);
  CHECK(st.needed == 6);
  CHECK(st.above_delta == 2);
  CHECK(st.fallback);
  CHECK(st.pool == 12);
  // B = 1: nothing to pair, an identity mix, reported as a fallback with an empty pool.
  Generator gen(1);
  SampleSelector(0.4f).select(Tensor::zeros({1, 1}), gen, &st);
  CHECK(st.needed == 1);
  CHECK(st.above_delta == 0);
  CHECK(st.fallback);
  CHECK(st.pool == 0);
}

TEST_CASE("mix stats: asking for selection stats changes no pair and no draw; pair similarity is their mean S'") {
  for (float delta : {0.4f, 0.95f}) {
    CAPTURE(delta);
    Tensor s = symmetric(4, {0.9f, 0.1f, 0.41f, 0.4f, 0.0f, 1.0f});
    SampleSelector selector(delta);
    Generator plain(42), with(42);
    SelectionStats st;
    std::vector<MixPair> a = selector.select(s, plain), b = selector.select(s, with, &st);
    CHECK(a == b);
    CHECK(plain.offset == with.offset);
    std::vector<float> sv = s.to_vector();
    double sum = 0;
    for (const MixPair& p : b) sum += sv[size_t(p.first * 4 + p.second)];
    CHECK(st.pair_similarity == doctest::Approx(sum / 4));
  }
}

TEST_CASE("mix stats: MSMix fills its MixResult's selection from the representations") {
  MixConfig config;
  Tensor labels = Tensor::from_vector({1, -1, 2, 0.5f}, {4});
  manual_seed(3);
  MSMix mixer(config, 4, 4, 2);
  SUBCASE("two clusters of two: four ordered pairs above delta = B, no fallback") {
    Representations reps = clustered({0, 0, 1, 1});
    Generator gen(7), again(7);
    MixResult r = mixer.mix(reps, labels, gen);
    const SelectionStats sel = selection_stats(r.selection.to_vector(), 4);
    CHECK(sel.needed == 4);
    CHECK(sel.above_delta == 4);
    CHECK(!sel.fallback);
    CHECK(sel.pair_similarity == doctest::Approx(1.0));  // every pair within a cluster
    CHECK(host_pairs(r) == SampleSelector(config.delta).select(reps, again));  // the selection of a plain call
  }
  SUBCASE("one pair and two loners: two candidates < B, the top 2B of the upper triangle") {
    Generator gen(7);
    MixResult r = mixer.mix(clustered({0, 0, 1, 2}), labels, gen);
    const SelectionStats sel = selection_stats(r.selection.to_vector(), 4);
    CHECK(sel.above_delta == 2);
    CHECK(sel.fallback);
    CHECK(sel.pool == 6);
  }
  SUBCASE("the baselines leave it unset") {
    config.method = MixMethod::Mixup;
    Generator gen(7);
    CHECK(!make_mixer(config, 0, 0, 0)->mix(clustered({0, 0, 1, 1}), labels, gen).selection.defined());
  }
}

TEST_CASE("mix stats: one step's statistics of a hand-made MixResult, and the epoch averages") {
  MixResult r;
  r.active = true;
  r.index_i = Tensor::from_vector({0, 1, 2, 3}, {4});
  r.index_j = Tensor::from_vector({1, 0, 2, 0}, {4});
  r.labels = Tensor::from_vector({-1, 2, 0.5f, 1}, {4});
  r.labels_i = Tensor::from_vector({-1, 2, 0.5f, 1}, {4});
  r.labels_j = Tensor::from_vector({2, -1, 0.5f, -1}, {4});  // opposite signs in pairs 0, 1, 3
  r.lambda_base = Tensor::full({4}, 0.5f);
  r.lambda_t = Tensor::from_vector({0.5f, 0.6f, 0.7f, 0.8f}, {4});
  r.lambda_a = Tensor::from_vector({0.5f, 0.4f, 0.7f, 0.6f}, {4});
  r.lambda_v = Tensor::from_vector({0.5f, 0.6f, 0.4f, 0.8f}, {4});
  r.lambda_label = Tensor::from_vector({0.2f, 0.4f, 0.6f, 0.8f}, {4, 1});  // [N, 1] is read as [N]
  r.mixed_labels = Tensor::from_vector({0.4f, -0.2f, 0.5f, 0.6f}, {4});
  r.intensity_t = Tensor::from_vector({1, -1, 2, -2}, {4});
  r.intensity_a = Tensor::full({4}, 0.5f);
  r.intensity_v = Tensor::from_vector({3, 1, 3, 1}, {4});
  r.selection = Tensor::from_vector({2, 1, 6, 0.7f}, {4});  // above delta, fallback, pool, mean S'

  MixStepStats s = mix_step_stats(r);
  CHECK(s.pairs == 4);
  CHECK(s.same_sample == 1);
  CHECK(s.opposite_sign == 3);
  CHECK(s.label_distance == doctest::Approx(3 + 3 + 0 + 2));
  CHECK(s.diff_ta == doctest::Approx(0.4));
  CHECK(s.diff_tv == doctest::Approx(0.3));
  CHECK(s.diff_av == doctest::Approx(0.7));

  MixStats epoch;
  CHECK(epoch.summary().empty());  // nothing mixed yet
  epoch.add(r);
  MixResult inactive;
  epoch.add(inactive);  // eval-mode results count for nothing
  Json j = epoch.summary();
  CHECK(j["steps"] == 1);
  CHECK(j["pairs_per_batch"].get<double>() == 4);
  CHECK(j["candidates_per_batch"].get<double>() == 2);
  CHECK(j["candidate_fraction"].get<double>() == doctest::Approx(2.0 / 12));
  CHECK(j["fallback_fraction"].get<double>() == 1);
  CHECK(j["pool_per_batch"].get<double>() == 6);
  CHECK(j["pair_similarity_mean"].get<double>() == doctest::Approx(0.7));
  CHECK(j["same_sample_fraction"].get<double>() == 0.25);
  CHECK(j["opposite_sign_fraction"].get<double>() == 0.75);
  CHECK(j["label_distance_mean"].get<double>() == doctest::Approx(2));
  CHECK(j["label_abs_mean"].get<double>() == doctest::Approx(1.125));
  CHECK(j["mixed_label_abs_mean"].get<double>() == doctest::Approx(0.425));
  CHECK(j["lambda_base_mean"].get<double>() == doctest::Approx(0.5));
  CHECK(j["lambda_base_std"].get<double>() == doctest::Approx(0).epsilon(1e-6));
  CHECK(j["lambda_label_mean"].get<double>() == doctest::Approx(0.5));
  CHECK(j["lambda_label_std"].get<double>() == doctest::Approx(std::sqrt(0.05)));
  CHECK(j["lambda_diff_ta"].get<double>() == doctest::Approx(0.1));
  CHECK(j["lambda_diff_tv"].get<double>() == doctest::Approx(0.075));
  CHECK(j["lambda_diff_av"].get<double>() == doctest::Approx(0.175));
  CHECK(j["intensity_t_mean"].get<double>() == doctest::Approx(0).epsilon(1e-9));
  CHECK(j["intensity_t_std"].get<double>() == doctest::Approx(std::sqrt(2.5)));
  CHECK(j["intensity_a_mean"].get<double>() == doctest::Approx(0.5));
  CHECK(j["intensity_a_std"].get<double>() == doctest::Approx(0).epsilon(1e-6));
  CHECK(j["intensity_v_mean"].get<double>() == doctest::Approx(2));
  CHECK(j["intensity_v_std"].get<double>() == doctest::Approx(1));

  // A second step without fallback, whose lambda^L is constant 0.9: fallback in half the steps; the std is
  // over all eight pairs of the epoch, not a mean of per-step stds.
  MixResult r2 = r;
  r2.lambda_label = Tensor::full({4}, 0.9f);
  r2.selection = Tensor::from_vector({8, 0, 8, 0.9f}, {4});
  epoch.add(r2);
  j = epoch.summary();
  CHECK(j["steps"] == 2);
  CHECK(j["fallback_fraction"].get<double>() == 0.5);
  CHECK(j["candidates_per_batch"].get<double>() == 5);
  CHECK(j["candidate_fraction"].get<double>() == doctest::Approx((2.0 + 8.0) / 12 / 2));
  CHECK(j["lambda_label_mean"].get<double>() == doctest::Approx(0.7));
  const double values[8] = {0.2, 0.4, 0.6, 0.8, 0.9, 0.9, 0.9, 0.9};
  double var = 0;
  for (double v : values) var += (v - 0.7) * (v - 0.7) / 8;
  CHECK(j["lambda_label_std"].get<double>() == doctest::Approx(std::sqrt(var)));
}

TEST_CASE("mix stats: Mixup's one lambda gives equal modality ratios, no selection and no intensity keys") {
  MixConfig config;
  config.method = MixMethod::Mixup;
  std::shared_ptr<Mixer> mixer = make_mixer(config, 0, 0, 0);
  Tensor labels = Tensor::from_vector({1, -1, 2, 0.5f, -3, 0}, {6});
  Generator gen(8);
  Representations reps = clustered({0, 1, 2, 3, 0, 1});
  MixResult r = mixer->mix(reps, labels, gen);
  MixStats epoch;
  epoch.add(r);
  Json j = epoch.summary();
  for (const char* key : {"candidates_per_batch", "fallback_fraction", "intensity_t_mean"}) CHECK(!j.contains(key));
  CHECK(j["lambda_diff_ta"].get<double>() == 0);
  CHECK(j["lambda_diff_av"].get<double>() == 0);
  CHECK(j["lambda_label_std"].get<double>() == doctest::Approx(0).epsilon(1e-6));  // one draw per batch
  int64_t fixed = 0;
  for (const MixPair& p : host_pairs(r)) fixed += p.first == p.second;
  CHECK(j["same_sample_fraction"].get<double>() == doctest::Approx(double(fixed) / 6));
  const float lam = r.lambda_label.to_vector()[0];
  CHECK(j["lambda_label_mean"].get<double>() == doctest::Approx(lam));
}
