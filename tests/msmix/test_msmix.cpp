// MS-Mix (shared/spec/msmix.md): sample selection, intensity predictor, mixing ratios, mixing, the losses,
// the MSMix object and the mixup baselines. PyTorch fixtures: tests/golden/make_msmix_golden.py.
#include <algorithm>
#include <cmath>
#include <set>

#include "msmix/alignment_loss.h"
#include "msmix/intensity_predictor.h"
#include "msmix/mixing.h"
#include "msmix/sample_selection.h"
#include "tests/golden/golden.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

// Naive cosine similarity averaged over the three modalities, in double.
std::vector<double> naive_similarity(const Representations& reps) {
  const int64_t B = reps.t.size(0);
  std::vector<double> s(size_t(B * B), 0.0);
  for (const Tensor* z : {&reps.t, &reps.a, &reps.v}) {
    std::vector<float> x = z->to_vector();
    const int64_t D = z->numel() / B;
    for (int64_t i = 0; i < B; ++i)
      for (int64_t j = 0; j < B; ++j) {
        double dot = 0, ni = 0, nj = 0;
        for (int64_t k = 0; k < D; ++k) {
          dot += double(x[i * D + k]) * x[j * D + k];
          ni += double(x[i * D + k]) * x[i * D + k];
          nj += double(x[j * D + k]) * x[j * D + k];
        }
        s[i * B + j] += dot / std::sqrt(ni) / std::sqrt(nj) / 3.0;
      }
  }
  return s;
}

MixConfig msmix_config() { return MixConfig{}; }

}  // namespace

// ---------------------------------------------------------------- SASS

TEST_CASE("msmix selection: cosine similarity of vector and sequence representations") {
  Representations reps{randn_tensor({5, 3}, 1), randn_tensor({5, 2, 3}, 2), randn_tensor({5, 4}, 3)};
  Tensor s = SampleSelector::cosine_similarity(reps);
  std::vector<double> expected = naive_similarity(reps);
  check_close(s.to_vector(), std::vector<float>(expected.begin(), expected.end()), 1e-5, 1e-6, "similarity");
  CHECK(!s.requires_grad());
  // A zero row stays zero (no NaN): its similarity with everything is 0 in that modality.
  reps.a = Tensor::zeros({5, 2, 3});
  std::vector<float> z = SampleSelector::cosine_similarity(reps).to_vector();
  for (float x : z) CHECK(std::isfinite(x));
}

TEST_CASE("msmix selection: min-max normalisation over the off-diagonal entries") {
  // Off-diagonal values 0.2, 0.5, 0.8 -> 0, 0.5, 1; the diagonal (any value) ends at 0.
  Tensor s = Tensor::from_vector({9, 0.2f, 0.5f, 0.2f, 9, 0.8f, 0.5f, 0.8f, 9}, {3, 3});
  check_close(SampleSelector::normalize_similarity(s).to_vector(), {0, 0, 0.5f, 0, 0, 1, 0.5f, 1, 0}, 1e-6, 1e-6,
              "normalized");
  // All off-diagonal entries equal: 0.5 everywhere off the diagonal.
  Tensor flat = Tensor::from_vector({1, 0.3f, 0.3f, 1}, {2, 2});
  check_close(SampleSelector::normalize_similarity(flat).to_vector(), {0, 0.5f, 0.5f, 0}, 0, 0, "flat");
  check_close(SampleSelector::normalize_similarity(Tensor::ones({1, 1})).to_vector(), {0}, 0, 0, "B = 1");
}

TEST_CASE("msmix selection: candidates above the threshold, ordered pairs, no self-pairs") {
  // B = 4. Upper triangle (0,1) (0,2) (0,3) (1,2) (1,3) (2,3).
  Tensor s = symmetric(4, {0.9f, 0.1f, 0.41f, 0.4f, 0.0f, 1.0f});
  SampleSelector selector(0.4f);
  std::vector<MixPair> c = selector.candidates(s);
  // > 0.4 strictly: (0,1), (0,3), (2,3) both ways, row-major.
  std::vector<MixPair> expected = {{0, 1}, {0, 3}, {1, 0}, {2, 3}, {3, 0}, {3, 2}};
  CHECK(c == expected);
  // delta = 0.05: every off-diagonal pair but the 0.0 one, still no (i, i).
  for (const MixPair& p : SampleSelector(0.05f).candidates(s)) CHECK(p.first != p.second);
  CHECK(SampleSelector(0.05f).candidates(s).size() == 10);
}

TEST_CASE("msmix selection: fewer than B candidates falls back to the top 2B of the upper triangle") {
  // B = 6: 15 upper entries, distinct; delta 0.95 leaves only (0,1) and (1,0): 2 < 6 -> the top 12.
  std::vector<float> upper;
  for (int k = 0; k < 15; ++k) upper.push_back(float((k * 7) % 15) / 14.0f);  // a permutation of 0..14 / 14
  Tensor s = symmetric(6, upper);
  std::vector<MixPair> c = SampleSelector(0.95f).candidates(s);
  REQUIRE(c.size() == 12);
  std::vector<float> sv = s.to_vector();
  for (size_t k = 0; k < c.size(); ++k) {
    CHECK(c[k].first < c[k].second);  // strict upper triangle
    if (k > 0) CHECK(sv[c[k - 1].first * 6 + c[k - 1].second] > sv[c[k].first * 6 + c[k].second]);
  }
  // The three smallest entries (0, 1/14, 2/14) are the ones left out.
  for (const MixPair& p : c) CHECK(sv[p.first * 6 + p.second] > 2.5f / 14.0f);
  // B = 4: only 6 upper entries exist (< 2B): all of them, never a self-pair.
  std::vector<MixPair> small = SampleSelector(0.99f).candidates(symmetric(4, {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f}));
  CHECK(small.size() == 6);
  for (const MixPair& p : small) CHECK(p.first < p.second);
}

TEST_CASE("msmix selection: B pairs from the candidates, reproducible with a seed") {
  Tensor s = SampleSelector::normalize_similarity(SampleSelector::cosine_similarity(
      {randn_tensor({8, 5}, 11), randn_tensor({8, 3, 2}, 12), randn_tensor({8, 4}, 13)}));
  SampleSelector selector(0.4f);
  std::vector<MixPair> pool = selector.candidates(s);
  Generator g1(42), g2(42), g3(43);
  std::vector<MixPair> p1 = selector.select(s, g1), p2 = selector.select(s, g2), p3 = selector.select(s, g3);
  REQUIRE(p1.size() == 8);
  CHECK(p1 == p2);
  CHECK(p1 != p3);
  std::set<MixPair> distinct(p1.begin(), p1.end());
  CHECK(distinct.size() == p1.size());  // enough candidates: no repeats
  for (const MixPair& p : p1) {
    CHECK(p.first != p.second);
    CHECK(std::find(pool.begin(), pool.end(), p) != pool.end());
  }
  CHECK(g1.offset == 8);  // one randint per kept pair
}

TEST_CASE("msmix selection: similar samples pair with each other") {
  // Samples 0 and 1 point one way, 2 and 3 another (orthogonal) in every modality.
  auto z = [](float noise) {
    return Tensor::from_vector({1, noise, 0, 0, 1, -noise, 0, 0, 0, 0, 1, noise, 0, 0, 1, -noise}, {4, 4});
  };
  Representations reps{z(0.01f), z(0.02f), reshape(z(0.03f), {4, 2, 2})};
  Generator gen(5);
  std::vector<MixPair> pairs = SampleSelector(0.4f).select(reps, gen);
  std::set<MixPair> got(pairs.begin(), pairs.end()), expected{{0, 1}, {1, 0}, {2, 3}, {3, 2}};
  CHECK(got == expected);
}

TEST_CASE("msmix selection: B = 1 and B = 2 edge cases") {
  SampleSelector selector(0.4f);
  Generator gen(1);
  CHECK(selector.select(Tensor::zeros({1, 1}), gen) == std::vector<MixPair>{{0, 0}});  // identity mix
  // B = 2: both off-diagonal entries are equal -> 0.5 > 0.4: (0,1) and (1,0) in some order.
  std::vector<MixPair> two = selector.select(SampleSelector::normalize_similarity(symmetric(2, {0.7f})), gen);
  std::set<MixPair> got(two.begin(), two.end()), expected{{0, 1}, {1, 0}};
  CHECK(got == expected);
  // delta 0.6: no candidate, fallback has the one upper pair, drawn with replacement up to B.
  CHECK(SampleSelector(0.6f).select(SampleSelector::normalize_similarity(symmetric(2, {0.7f})), gen) ==
        std::vector<MixPair>{{0, 1}, {0, 1}});
}

// ---------------------------------------------------------------- intensity predictor

TEST_CASE("msmix predictor: parameter names, padding and the reducer above 2000") {
  IntensityPredictor p(6);
  CHECK(p.padded_dim == 8);
  CHECK(p.head_dim == 2);
  std::vector<std::string> names;
  for (const auto& [name, t] : p.named_parameters()) names.push_back(name);
  CHECK(names == std::vector<std::string>{"qkv_proj.weight", "qkv_proj.bias", "output_proj.weight", "output_proj.bias",
                                          "norm1.weight", "norm1.bias"});
  CHECK(p.qkv_proj->weight.shape() == Shape{24, 8});
  IntensityPredictor big(2001);
  CHECK(big.named_parameters()[0].first == "dimension_reducer.weight");
  CHECK(big.dimension_reducer->weight.shape() == Shape{1024, 2001});
  CHECK(big.padded_dim == 1024);
  Tensor out = big.forward(randn_tensor({2, 2001}, 3));
  CHECK(out.shape() == Shape{2});
  for (float x : out.to_vector()) CHECK(std::fabs(x) < 3.0f);
  CHECK(IntensityPredictor(2000).dimension_reducer == nullptr);
}

TEST_CASE("msmix predictor golden: vector and sequence input against PyTorch") {
  for (const char* name : {"predictor_vector", "predictor_sequence", "predictor_sequence_2heads"}) {
    CAPTURE(name);
    golden::Fixture fx = golden::load(std::string("msmix/") + name + ".json");
    Tensor x = fx["x"];
    IntensityPredictor p(x.size(-1), int64_t(fx["heads"].item()));
    p.load_state_dict(fx.with_prefix("state."));
    x.set_requires_grad(true);
    Tensor y = p.forward(x);
    check_close(y, fx["out"], 1e-4, 1e-5, std::string(name) + " out");
    y.backward(fx["w"]);
    check_close(x.grad(), fx["grad.x"], 1e-4, 1e-5, std::string(name) + " grad.x");
    for (const auto& [pname, t] : p.named_parameters())
      check_close(t.grad(), fx["grad." + pname], 1e-4, 1e-5, std::string(name) + " grad." + pname);
  }
}

TEST_CASE("msmix predictor: each sample attends over its own tokens only") {
  manual_seed(3);
  IntensityPredictor p(5);
  Tensor x = randn_tensor({3, 4, 5}, 8);
  std::vector<float> batched = p.forward(x).to_vector();
  for (int64_t b = 0; b < 3; ++b)
    check_close(p.forward(slice(x, 0, b, b + 1)).to_vector(), {batched[b]}, 1e-5, 1e-6, "sample alone");
}

// ---------------------------------------------------------------- ratios, mixing, L_mix

TEST_CASE("msmix ratios: hand-computed values for fixed intensities and lambda_base") {
  // |I_t| = 1, 2, 0.5, 3: min 0.5, max 3 -> w = 0.2, 0.6, 0, 1.
  Tensor it = Tensor::from_vector({1, -2, 0.5f, 3}, {4});
  Tensor ia = Tensor::from_vector({2, 2, 2, 2}, {4});     // all equal: w = 0 -> lambda_adapt = 1/2
  Tensor iv = Tensor::from_vector({0, 1, -1, 0.5f}, {4});  // w = 0, 1, 1, 0.5
  Tensor index_i = Tensor::from_vector({0, 2, 3, 1}, {4}), index_j = Tensor::from_vector({1, 3, 0, 2}, {4});
  Tensor base = Tensor::from_vector({0.5f, 0.2f, 0.9f, 0.1f}, {4});
  MixRatios r = mixing_ratios(it, ia, iv, index_i, index_j, base, 1e-8f);
  // lambda_adapt^t: 0.2/0.8, 0/1, 1/1.2, 0.6/0.6;  lambda^t = (base + adapt) / 2
  std::vector<double> adapt_t = {0.25, 0.0, 1.0 / 1.2, 1.0}, adapt_a = {0.5, 0.5, 0.5, 0.5},
                      adapt_v = {0.0, 1.0 / 1.5, 0.5 / 0.5, 1.0 / 2.0};
  std::vector<float> b = base.to_vector(), et, ea, ev, el;
  for (int k = 0; k < 4; ++k) {
    et.push_back(float((b[k] + adapt_t[k]) / 2));
    ea.push_back(float((b[k] + adapt_a[k]) / 2));
    ev.push_back(float((b[k] + adapt_v[k]) / 2));
    el.push_back((et[k] + ea[k] + ev[k]) / 3);
  }
  check_close(r.t.to_vector(), et, 1e-5, 1e-6, "lambda_t");
  check_close(r.a.to_vector(), ea, 1e-5, 1e-6, "lambda_a");
  check_close(r.v.to_vector(), ev, 1e-5, 1e-6, "lambda_v");
  check_close(r.label.to_vector(), el, 1e-5, 1e-6, "lambda_label");
  check_close(intensity_weights(it, 1e-8f).to_vector(), {0.2f, 0.6f, 0, 1}, 1e-5, 1e-6, "w_t");
}

TEST_CASE("msmix ratios: within [0, 1] for random intensities and Beta draws") {
  Generator gen(77);
  const int64_t B = 16;
  Tensor it = Tensor::rand({B}, gen, -3, 3), ia = Tensor::rand({B}, gen, -3, 3), iv = Tensor::rand({B}, gen, -3, 3);
  std::vector<float> i1, i2, base;
  for (int64_t k = 0; k < B; ++k) {
    i1.push_back(float(gen.randint(B)));
    i2.push_back(float(gen.randint(B)));
    base.push_back(gen.beta(2, 2));
  }
  MixRatios r = mixing_ratios(it, ia, iv, Tensor::from_vector(i1, {B}), Tensor::from_vector(i2, {B}),
                              Tensor::from_vector(base, {B}), 1e-8f);
  for (const Tensor* l : {&r.t, &r.a, &r.v, &r.label})
    for (float x : l->to_vector()) CHECK((x >= 0 && x <= 1));
}

TEST_CASE("msmix ratios: gradients flow from the ratios into the intensities") {
  Tensor index_i = Tensor::from_vector({0, 2, 3, 1, 4}, {5}), index_j = Tensor::from_vector({1, 3, 0, 2, 0}, {5});
  Tensor base = Tensor::from_vector({0.5f, 0.2f, 0.9f, 0.1f, 0.6f}, {5});
  std::vector<Tensor> inputs = {leaf({5}, 1, 1.0f, 0.0f), leaf({5}, 2), leaf({5}, 3)};
  check_gradients(
      [&](const std::vector<Tensor>& in) {
        MixRatios r = mixing_ratios(in[0], in[1], in[2], index_i, index_j, base, 1e-8f);
        return concat({r.t, r.a, r.v, r.label}, 0);
      },
      inputs);
}

TEST_CASE("msmix mixing: vector and sequence rows") {
  Tensor index_i = Tensor::from_vector({0, 2, 1}, {3}), index_j = Tensor::from_vector({1, 0, 1}, {3});
  Tensor lambda = Tensor::from_vector({0.25f, 1.0f, 0.6f}, {3});
  for (const Shape& shape : {Shape{3, 4}, Shape{3, 2, 4}}) {
    Tensor z = randn_tensor(shape, 9);
    std::vector<float> zv = z.to_vector(), expected, lam = lambda.to_vector();
    const int64_t row = z.numel() / 3;
    std::vector<int> ii = {0, 2, 1}, jj = {1, 0, 1};
    for (int k = 0; k < 3; ++k)
      for (int64_t e = 0; e < row; ++e)
        expected.push_back(lam[k] * zv[ii[k] * row + e] + (1 - lam[k]) * zv[jj[k] * row + e]);
    Tensor mixed = mix_rows(z, index_i, index_j, lambda);
    CHECK(mixed.shape() == z.shape());
    check_close(mixed.to_vector(), expected, 1e-6, 1e-6, "mixed " + shape_str(shape));
  }
}

TEST_CASE("msmix L_mix: hand value, and the gradient of MSE against the mixed label") {
  Tensor pred = Tensor::from_vector({1, 2}, {2, 1}).set_requires_grad(true);
  Tensor yi = Tensor::from_vector({0, 2}, {2}), yj = Tensor::from_vector({2, 0}, {2});
  Tensor lam = Tensor::from_vector({0.25f, 0.5f}, {2});
  Tensor loss = pair_mix_loss(pred, yi, yj, lam);
  // k0: 0.25 * 1 + 0.75 * 1 = 1; k1: 0.5 * 0 + 0.5 * 4 = 2 -> mean 1.5
  CHECK(loss.item() == doctest::Approx(1.5));
  loss.backward();
  Tensor pred2 = Tensor::from_vector({1, 2}, {2}).set_requires_grad(true);
  Tensor ytilde = add(mul(lam, yi), mul(rsub(1.0f, lam), yj));
  mse_loss(pred2, ytilde).backward();
  check_close(pred.grad().to_vector(), pred2.grad().to_vector(), 1e-6, 1e-6, "grad");
}

// ---------------------------------------------------------------- SAL

TEST_CASE("msmix SAL golden: loss and its gradient against PyTorch") {
  for (const char* name : {"alignment_s3", "alignment_s1"}) {
    CAPTURE(name);
    golden::Fixture fx = golden::load(std::string("msmix/") + name + ".json");
    std::vector<Tensor> intensities;
    for (const char* m : {"t", "a", "v"})
      intensities.push_back(fx[std::string("intensity.") + m].set_requires_grad(true));
    Tensor loss = alignment_loss(fx["labels"], intensities, fx["s"].item(), 1000.0f);
    CHECK(loss.dim() == 0);
    check_close(loss, fx["loss"], 1e-4, 0, std::string(name) + " loss");
    loss.backward();
    const char* ms[3] = {"t", "a", "v"};
    for (int m = 0; m < 3; ++m)
      check_close(intensities[m].grad(), fx[std::string("grad.") + ms[m]], 1e-4, 1e-4, std::string(name) + " grad");
  }
}

TEST_CASE("msmix SAL: zero when intensities match the labels' magnitudes, [B, 1] labels accepted") {
  Tensor y = Tensor::from_vector({-1.5f, 2, 0.5f}, {3, 1});
  Tensor loss = alignment_loss(y, {Tensor::from_vector({1.5f, -2, 0.5f}, {3})}, 3, 1000);
  CHECK(std::fabs(loss.item()) < 1e-4f);
}

// ---------------------------------------------------------------- the MSMix object and the baselines

TEST_CASE("msmix MSMix: mix_center feeds the predictors each representation minus its batch mean") {
  MixConfig config = msmix_config();
  config.center_intensity_input = true;
  manual_seed(22);
  MSMix mixer(config, 6, 5, 7);
  Representations reps{randn_tensor({6, 6}, 1), randn_tensor({6, 3, 5}, 2), randn_tensor({6, 7}, 3)};
  Tensor labels = Tensor::from_vector({-2, 1.5f, 0.3f, -0.7f, 2.8f, 1}, {6});
  Generator gen(99);
  MixResult r = mixer.mix(reps, labels, gen);
  REQUIRE(r.active);
  NoGradGuard no_grad;
  check_close(r.intensity_t, mixer.text->forward(sub(reps.t, mean(reps.t, {0}, true))), 1e-6, 1e-7, "text");
  check_close(r.intensity_a, mixer.audio->forward(sub(reps.a, mean(reps.a, {0}, true))), 1e-6, 1e-7, "audio");
  // A pattern shared by every sample no longer reaches the predictors: adding it changes nothing.
  Representations shifted = reps;
  shifted.t = add(reps.t, Tensor::full({1, 6}, 5.0f));
  Generator gen2(99);
  check_close(mixer.mix(shifted, labels, gen2).intensity_t, r.intensity_t, 1e-5, 1e-6, "shifted text");
}

TEST_CASE("msmix MSMix: mixes in training, with ratios from the intensities") {
  manual_seed(21);
  MSMix mixer(msmix_config(), 6, 5, 7);
  CHECK(mixer.named_parameters()[0].first == "text.qkv_proj.weight");
  Representations reps{randn_tensor({6, 6}, 1), randn_tensor({6, 3, 5}, 2), randn_tensor({6, 7}, 3)};
  Tensor labels = Tensor::from_vector({-2, 1.5f, 0.3f, -0.7f, 2.8f, 1}, {6, 1});
  Generator gen(99);
  MixResult r = mixer.mix(reps, labels, gen);
  REQUIRE(r.active);
  CHECK(r.layer == "representations");
  CHECK(host_pairs(r).size() == 6);
  CHECK(r.mixed.a.shape() == Shape{6, 3, 5});
  // The pieces agree with the free functions.
  MixRatios ratios = mixing_ratios(r.intensity_t, r.intensity_a, r.intensity_v, r.index_i, r.index_j, r.lambda_base,
                                   1e-8f);
  check_close(r.lambda_label, ratios.label, 1e-6, 1e-7, "lambda_label");
  check_close(r.mixed.a, mix_rows(reps.a, r.index_i, r.index_j, ratios.a), 1e-6, 1e-6, "mixed a");
  check_close(r.mixed_labels, add(mul(r.lambda_label, r.labels_i), mul(rsub(1.0f, r.lambda_label), r.labels_j)), 1e-6,
              1e-6, "mixed labels");
  // The same seed gives the same pairs and draws.
  Generator again(99);
  MixResult r2 = mixer.mix(reps, labels, again);
  CHECK(host_pairs(r2) == host_pairs(r));
  check_close(r2.lambda_base, r.lambda_base, 0, 0, "lambda_base");
  // Total loss = task + 0.7 L_mix + 0.5 L_SAL.
  Tensor mixed_pred = randn_tensor({6, 1}, 4), task = Tensor::scalar(0.8f);
  float expected = 0.8f + 0.7f * mixer.mix_loss(mixed_pred, r).item() + 0.5f * mixer.alignment_loss(r).item();
  CHECK(mixer.total_loss(task, mixed_pred, r).item() == doctest::Approx(expected).epsilon(1e-5));
  Tensor pred = randn_tensor({6, 1}, 5);
  float l1 = l1_loss(reshape(pred, {6}), reshape(labels, {6})).item();
  CHECK(mixer.total_loss(pred, mixed_pred, r, TaskLoss::L1).item() ==
        doctest::Approx(l1 + expected - 0.8f).epsilon(1e-5));
}

TEST_CASE("msmix MSMix: gradients reach the predictors and the representations through lambda") {
  manual_seed(5);
  MSMix mixer(msmix_config(), 4, 3, 5);
  Tensor labels = Tensor::from_vector({-2, 1.5f, 0.3f, -0.7f, 2.5f}, {5});
  // Inputs: the representations and a few predictor parameters (leaves perturbed in place).
  std::vector<Tensor> inputs = {leaf({5, 4}, 1), leaf({5, 2, 3}, 2), leaf({5, 5}, 3), mixer.text->output_proj->weight,
                                mixer.audio->output_proj->bias, mixer.vision->qkv_proj->bias};
  check_gradients(
      [&](const std::vector<Tensor>& in) {
        Generator gen(17);  // same pairs and Beta draws every call
        MixResult r = mixer.mix({in[0], in[1], in[2]}, labels, gen);
        // SAL at weight 1 (not 1000): x1000 float32 rounding would swamp the finite differences; the golden
        // test checks its gradient at full scale.
        Tensor sal = alignment_loss(r.labels, {r.intensity_t, r.intensity_a, r.intensity_v}, 3, 1);
        return concat({reshape(r.mixed.t, {-1}), reshape(r.mixed.a, {-1}), reshape(r.mixed.v, {-1}), r.mixed_labels,
                       reshape(sal, {1})},
                      0);
      },
      inputs);
  // Through the label ratio alone: L_mix reaches the text predictor's qkv weights.
  Generator gen(17);
  MixResult r = mixer.mix({randn_tensor({5, 4}, 1), randn_tensor({5, 2, 3}, 2), randn_tensor({5, 5}, 3)}, labels, gen);
  mixer.zero_grad();
  mixer.mix_loss(randn_tensor({5}, 6), r).backward();
  REQUIRE(mixer.text->qkv_proj->weight.grad().defined());
  float norm = 0;
  for (float g : mixer.text->qkv_proj->weight.grad().to_vector()) norm += g * g;
  CHECK(norm > 0);
}

TEST_CASE("msmix: nothing is mixed in eval mode") {
  Representations reps{randn_tensor({4, 3}, 1), randn_tensor({4, 2}, 2), randn_tensor({4, 2, 2}, 3)};
  Tensor labels = Tensor::from_vector({1, -1, 2, 0.5f}, {4});
  MixConfig config;
  for (MixMethod method :
       {MixMethod::None, MixMethod::Mixup, MixMethod::Manifold, MixMethod::MultiMix, MixMethod::MSMix}) {
    CAPTURE(mix_method_name(method));
    config.method = method;
    std::shared_ptr<Mixer> mixer = make_mixer(config, 3, 2, 2);
    CHECK(mixer->name() == mix_method_name(method));
    mixer->eval();
    Generator gen(3);
    MixResult r = mixer->mix(reps, labels, gen);
    CHECK(!r.active);
    CHECK(!r.mixed.t.defined());
    CHECK(gen.offset == 0);  // no draws
    Tensor task = Tensor::scalar(0.25f);
    CHECK(mixer->total_loss(task, Tensor(), r).same(task));
    CHECK(mixer->mix_loss(Tensor(), r).item() == 0);
  }
  // none never mixes, even in training.
  config.method = MixMethod::None;
  Generator gen(3);
  CHECK(!make_mixer(config, 3, 2, 2)->mix(reps, labels, gen).active);
}

TEST_CASE("msmix baselines: Mixup and Manifold Mixup share one lambda and permute the batch") {
  Representations reps{randn_tensor({6, 3}, 1), randn_tensor({6, 2}, 2), randn_tensor({6, 4, 2}, 3)};
  Tensor labels = Tensor::from_vector({1, -1, 2, 0.5f, -3, 0}, {6});
  for (MixMethod method : {MixMethod::Mixup, MixMethod::Manifold}) {
    CAPTURE(mix_method_name(method));
    MixConfig config;
    config.method = method;
    std::shared_ptr<Mixer> mixer = make_mixer(config, 0, 0, 0);
    Generator gen(8);
    MixResult r = mixer->mix(reps, labels, gen);
    REQUIRE(r.active);
    CHECK(r.layer == "representations");
    std::vector<float> lam = r.lambda_label.to_vector();
    for (float l : lam) CHECK(l == lam[0]);
    CHECK((lam[0] > 0 && lam[0] < 1));
    std::set<int64_t> seconds;
    const std::vector<MixPair> pairs = host_pairs(r);
    for (int64_t k = 0; k < 6; ++k) {
      CHECK(pairs[k].first == k);
      seconds.insert(pairs[k].second);
    }
    CHECK(seconds.size() == 6);  // a permutation
    check_close(r.mixed.v, mix_rows(reps.v, r.index_i, r.index_j, r.lambda_v), 1e-6, 1e-6, "mixed v");
    check_close(r.mixed_labels, add(mul(r.labels_i, lam[0]), mul(r.labels_j, 1 - lam[0])), 1e-6, 1e-6, "labels");
    CHECK(mixer->alignment_loss(r).item() == 0);
    Tensor mixed_pred = randn_tensor({6}, 2), task = Tensor::scalar(0.5f);
    CHECK(mixer->total_loss(task, mixed_pred, r).item() ==
          doctest::Approx(0.5f + 0.7f * mixer->mix_loss(mixed_pred, r).item()));
  }
}

TEST_CASE("msmix: clear errors for mismatched batch sizes and widths") {
  MSMix mixer(msmix_config(), 8, 6, 3);
  Generator gen(1);
  Tensor labels = Tensor::zeros({4});
  check_throws_with(
      [&] {
        mixer.mix({Tensor::zeros({4, 8}), Tensor::zeros({5, 6}), Tensor::zeros({4, 3})}, labels, gen);
      },
      {"msmix", "batch sizes differ", "a [5, 6]", "labels [4]"});
  check_throws_with(
      [&] {
        mixer.mix({Tensor::zeros({4, 8}), Tensor::zeros({4, 6}), Tensor::zeros({4, 3})}, Tensor::zeros({3}), gen);
      },
      {"batch sizes differ", "labels [3]"});
  check_throws_with(
      [&] {
        mixer.mix({Tensor::zeros({4, 9}), Tensor::zeros({4, 6}), Tensor::zeros({4, 3})}, labels, gen);
      },
      {"text representation is [4, 9]", "width 8"});
  check_throws_with([&] { alignment_loss(labels, {Tensor::zeros({5})}); }, {"alignment_loss", "batch sizes differ"});
  check_throws_with([&] { pair_mix_loss(Tensor::zeros({3}), labels, labels, labels); }, {"pair_mix_loss", "[3]"});
  check_throws_with(
      [&] {
        SampleSelector::cosine_similarity({Tensor::zeros({4, 2}), Tensor::zeros({3, 2}), Tensor::zeros({4, 2})});
      },
      {"SampleSelector", "batch sizes differ"});
  check_throws_with([&] { IntensityPredictor(8).forward(Tensor::zeros({2, 7})); }, {"IntensityPredictor(8)", "[2, 7]"});
  check_throws_with([&] { parse_mix_method("cutmix"); }, {"unknown method 'cutmix'"});
  CHECK(parse_mix_method("manifold") == MixMethod::Manifold);
  CHECK(label_scale_for("SIMS") == 1.0f);
  CHECK(label_scale_for("mosi") == 3.0f);
}
