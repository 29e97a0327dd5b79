// MultiMix (msmix/multimix.h): the Dirichlet weights, the weighted mixing and loss against naive loops and
// finite differences, the mixer in training and eval, and its epoch statistics.
#include <cmath>

#include "msmix/mix_stats.h"
#include "msmix/multimix.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

MixConfig multimix_config(int64_t mix_count = 0) {
  MixConfig c;
  c.method = MixMethod::MultiMix;
  c.mix_count = mix_count;
  return c;
}

}  // namespace

TEST_CASE("multimix draws: Dirichlet rows on the simplex, with its mean and spread, reproducible") {
  const int64_t N = 4000, B = 5;
  const double alpha = 2.0;
  Generator gen(21);
  const std::vector<float> w = draw_dirichlet_rows(N, B, float(alpha), gen);
  REQUIRE(w.size() == size_t(N * B));
  std::vector<double> column_mean(B, 0.0);
  double squares = 0;
  for (int64_t k = 0; k < N; ++k) {
    double total = 0;
    for (int64_t i = 0; i < B; ++i) {
      const float x = w[size_t(k * B + i)];
      CHECK(x >= 0);
      total += x;
      column_mean[size_t(i)] += x / double(N);
      squares += double(x) * x / double(N);
    }
    CHECK(total == doctest::Approx(1.0).epsilon(1e-6));
  }
  // Dirichlet(alpha 1_B): E[w_i] = 1 / B; E[sum_i w_i^2] = (alpha + 1) / (B alpha + 1). Standard errors here are
  // about 0.002 and 0.003: the tolerances are about five of them.
  for (double m : column_mean) CHECK(std::fabs(m - 1.0 / B) < 0.01);
  CHECK(std::fabs(squares - (alpha + 1) / (B * alpha + 1)) < 0.015);

  // Two samples: the first weight is Beta(alpha, alpha), Mixup's lambda; variance 1 / (4 (2 alpha + 1)).
  Generator gen2(22);
  const std::vector<float> pair = draw_dirichlet_rows(N, 2, float(alpha), gen2);
  double mean = 0, var = 0;
  for (int64_t k = 0; k < N; ++k) mean += pair[size_t(2 * k)] / double(N);
  for (int64_t k = 0; k < N; ++k) var += std::pow(pair[size_t(2 * k)] - mean, 2) / double(N);
  CHECK(std::fabs(mean - 0.5) < 0.02);
  CHECK(std::fabs(var - 1.0 / (4 * (2 * alpha + 1))) < 0.005);

  // alpha below 1 (Gamma's boosted branch) still gives rows on the simplex.
  Generator gen3(23);
  const std::vector<float> sparse = draw_dirichlet_rows(50, 8, 0.2f, gen3);
  for (int64_t k = 0; k < 50; ++k) {
    double total = 0;
    for (int64_t i = 0; i < 8; ++i) total += sparse[size_t(k * 8 + i)];
    CHECK(total == doctest::Approx(1.0).epsilon(1e-6));
  }

  Generator again(21), other(24);
  CHECK(draw_dirichlet_rows(N, B, float(alpha), again) == w);
  CHECK(draw_dirichlet_rows(N, B, float(alpha), other) != w);
  check_throws_with([&] { draw_dirichlet_rows(0, 3, 1.0f, gen); }, {"draw_dirichlet_rows", "N (0)"});
}

TEST_CASE("multimix mix_weighted: naive sums for vector and sequence rows, and its gradients") {
  const Tensor weights = Tensor::from_vector({0.5f, 0.25f, 0.25f, 0, 1, 0, 0.1f, 0.2f, 0.7f, 0.3f, 0.3f, 0.4f}, {4, 3});
  const std::vector<float> w = weights.to_vector();
  for (const Shape& shape : {Shape{3, 5}, Shape{3, 2, 4}}) {
    CAPTURE(shape_str(shape));
    const Tensor z = randn_tensor(shape, 4);
    const std::vector<float> zv = z.to_vector();
    const int64_t row = z.numel() / 3;
    std::vector<float> expected;
    for (int64_t k = 0; k < 4; ++k)
      for (int64_t e = 0; e < row; ++e) {
        double s = 0;
        for (int64_t i = 0; i < 3; ++i) s += double(w[size_t(k * 3 + i)]) * zv[size_t(i * row + e)];
        expected.push_back(float(s));
      }
    const Tensor mixed = mix_weighted(z, weights);
    Shape out = shape;
    out[0] = 4;
    CHECK(mixed.shape() == out);
    check_close(mixed.to_vector(), expected, 1e-6, 1e-6, "mixed");
  }
  check_gradients([](const std::vector<Tensor>& in) { return mix_weighted(in[0], in[1]); },
                  {leaf({3, 2, 4}, 5), leaf({4, 3}, 6, 0.3f, 0.3f)});
  check_throws_with([&] { mix_weighted(Tensor::zeros({4, 5}), weights); }, {"mix_weighted", "z [4, 5]", "[4, 3]"});
}

TEST_CASE("multimix loss: two-hot weights give the pair loss; naive value; the gradient of MSE to the mixed label") {
  // Rows with two non-zero weights are Mixup's pairs: (i, j, lambda) = (0, 2, 0.25), (1, 0, 0.5), (2, 1, 1).
  const Tensor labels = Tensor::from_vector({1.5f, -2, 0.5f}, {3});
  const Tensor weights = Tensor::from_vector({0.25f, 0, 0.75f, 0.5f, 0.5f, 0, 0, 0, 1}, {3, 3});
  const Tensor pred = Tensor::from_vector({0.3f, -1, 2}, {3, 1});
  const Tensor pair =
      pair_mix_loss(pred, Tensor::from_vector({1.5f, -2, 0.5f}, {3}), Tensor::from_vector({0.5f, 1.5f, -2}, {3}),
                    Tensor::from_vector({0.25f, 0.5f, 1}, {3}));
  CHECK(weighted_mix_loss(pred, labels, weights).item() == doctest::Approx(pair.item()).epsilon(1e-6));

  // Dense weights, N = 2 mixed from B = 3, against a naive double sum.
  const Tensor dense = Tensor::from_vector({0.2f, 0.3f, 0.5f, 0.6f, 0.1f, 0.3f}, {2, 3});
  const Tensor p2 = Tensor::from_vector({0.4f, -0.7f}, {2}).set_requires_grad(true);
  const std::vector<float> w = dense.to_vector(), y = labels.to_vector(), p = p2.to_vector();
  double naive = 0;
  for (int k = 0; k < 2; ++k)
    for (int i = 0; i < 3; ++i) naive += w[size_t(k * 3 + i)] * std::pow(p[size_t(k)] - y[size_t(i)], 2) / 2;
  const Tensor loss = weighted_mix_loss(p2, labels, dense);
  CHECK(loss.item() == doctest::Approx(naive).epsilon(1e-6));
  // Rows summing to 1: the same gradient as MSE against ytilde = W y.
  loss.backward();
  const Tensor p3 = Tensor::from_vector({0.4f, -0.7f}, {2}).set_requires_grad(true);
  mse_loss(p3, reshape(matmul(dense, reshape(labels, {3, 1})), {2})).backward();
  check_close(p2.grad(), p3.grad(), 1e-5, 1e-6, "grad");
  check_gradients([&](const std::vector<Tensor>& in) { return weighted_mix_loss(in[0], in[1], in[2]); },
                  {leaf({2, 1}, 7), leaf({3}, 8), leaf({2, 3}, 9, 0.2f, 0.3f)});
  check_throws_with([&] { weighted_mix_loss(Tensor::zeros({3}), labels, dense); },
                    {"weighted_mix_loss", "[3]", "[2, 3]"});
}

TEST_CASE("multimix mixer: N mixed samples of W z and W y in training, none in eval, and its checks") {
  Representations reps{randn_tensor({6, 3}, 1), randn_tensor({6, 2}, 2), randn_tensor({6, 4, 2}, 3)};
  reps.t_fine = randn_tensor({6, 5}, 4);
  reps.a_fine = randn_tensor({6, 5}, 5);
  reps.v_fine = randn_tensor({6, 5}, 6);
  const Tensor labels = Tensor::from_vector({1, -1, 2, 0.5f, -3, 0}, {6, 1});
  for (int64_t count : {0, 3, 10}) {
    CAPTURE(count);
    const int64_t N = count > 0 ? count : 6;
    std::shared_ptr<Mixer> mixer = make_mixer(multimix_config(count), 0, 0, 0);
    CHECK(mixer->name() == "multimix");
    Generator gen(8);
    const MixResult r = mixer->mix(reps, labels, gen);
    REQUIRE(r.active);
    CHECK(r.layer == "representations");
    CHECK(gen.offset > 0);
    REQUIRE(r.weights.shape() == Shape{N, 6});
    CHECK(host_pairs(r).empty());  // no pairs
    CHECK(!r.index_i.defined());
    // The same weights, in the order the generator gives them, for every modality and the labels.
    Generator replay(8);
    const Tensor w = Tensor::from_vector(draw_dirichlet_rows(N, 6, 2.0f, replay), {N, 6});
    check_close(r.weights, w, 0, 0, "weights = the Dirichlet draws");
    check_close(r.mixed.t, mix_weighted(reps.t, w), 1e-6, 1e-6, "t");
    check_close(r.mixed.v, mix_weighted(reps.v, w), 1e-6, 1e-6, "v (a sequence)");
    check_close(r.mixed.a_fine, mix_weighted(reps.a_fine, w), 1e-6, 1e-6, "fine a");
    check_close(r.mixed_labels, reshape(matmul(w, labels), {N}), 1e-6, 1e-6, "labels");
    // total = task + 0.7 L_mix, no alignment term; L_mix takes the N mixed predictions.
    const Tensor mixed_pred = randn_tensor({N, 1}, 2), task = Tensor::scalar(0.5f);
    const float mix = mixer->mix_loss(mixed_pred, r).item();
    CHECK(mix == doctest::Approx(weighted_mix_loss(mixed_pred, reshape(labels, {6}), w).item()));
    const Mixer::LossTerms terms = mixer->loss_terms(task, mixed_pred, r);
    CHECK(terms.total.item() == doctest::Approx(0.5f + 0.7f * mix));
    CHECK(!terms.sal.defined());
    // Fusion of originals and mixed samples, as the trainer feeds it: B + N rows.
    CHECK(concat_batches(reps, r.mixed).t.size(0) == 6 + N);
  }
  std::shared_ptr<Mixer> mixer = make_mixer(multimix_config(), 0, 0, 0);
  mixer->eval();
  Generator gen(3);
  CHECK(!mixer->mix(reps, labels, gen).active);
  CHECK(gen.offset == 0);
  mixer->train();
  check_throws_with([&] { mixer->mix(reps, labels, Tensor::zeros({35})); }, {"multimix", "draws must be [36]"});
  MixConfig negative = multimix_config(-1), elsewhere = multimix_config(4);
  check_throws_with([&] { make_mixer(negative, 0, 0, 0); }, {"multimix", "mix_count must be >= 0", "-1"});
  elsewhere.method = MixMethod::Mixup;
  check_throws_with([&] { make_mixer(elsewhere, 0, 0, 0); }, {"mixup", "mix_count=4 applies to multimix only"});
  CHECK(parse_mix_method("multimix") == MixMethod::MultiMix);
}

TEST_CASE("multimix statistics: the spread of the weights and the mixed labels, no pair keys") {
  Representations reps{randn_tensor({4, 3}, 1), randn_tensor({4, 2}, 2), randn_tensor({4, 2}, 3)};
  const Tensor labels = Tensor::from_vector({1, -1, 2, 0.5f}, {4});
  std::shared_ptr<Mixer> mixer = make_mixer(multimix_config(5), 0, 0, 0);
  Generator gen(4);
  const MixResult r = mixer->mix(reps, labels, gen);
  const std::vector<float> w = r.weights.to_vector(), y = labels.to_vector();
  double top = 0, sources = 0, mixed = 0;
  for (int k = 0; k < 5; ++k) {
    double m = 0, sq = 0, label = 0;
    for (int i = 0; i < 4; ++i) {
      const double x = w[size_t(k * 4 + i)];
      m = std::max(m, x);
      sq += x * x;
      label += x * y[size_t(i)];
    }
    top += m / 5, sources += 1 / sq / 5, mixed += std::fabs(label) / 5;
  }
  const MixStepStats step = mix_step_stats(r);
  CHECK(step.weighted);
  CHECK(step.pairs == 5);
  MixStats stats;
  stats.add(r);
  stats.add(r);  // two steps, the same values: the averages do not change
  const Json j = stats.summary();
  CHECK(j["steps"].get<int64_t>() == 2);
  CHECK(j["mixed_per_batch"].get<double>() == 5);
  CHECK(j["weight_max_mean"].get<double>() == doctest::Approx(top).epsilon(1e-6));
  CHECK(j["sources_effective_mean"].get<double>() == doctest::Approx(sources).epsilon(1e-5));
  CHECK(j["mixed_label_abs_mean"].get<double>() == doctest::Approx(mixed).epsilon(1e-5));
  CHECK(j["label_abs_mean"].get<double>() == doctest::Approx(4.5 / 4));
  CHECK(!j.contains("lambda_label_mean"));
  CHECK(!j.contains("pairs_per_batch"));
  CHECK(top > 0.25);  // at least the uniform weight
  CHECK((sources >= 1 && sources <= 4));
}
