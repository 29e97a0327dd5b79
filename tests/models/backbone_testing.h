// Helpers shared by the backbone tests that compare against PyTorch twins (test_almt, test_bert, test_glomo,
// test_mult): the twins' weight formula, a closeness check scaled to a tensor's magnitude, random inputs, and
// the small overfit each backbone must pass.
#pragma once
#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "models/backbone.h"
#include "msmix/optimizer.h"
#include "tests/golden/golden.h"
#include "tests/testing.h"

namespace msmix::testing {

// The weights of tests/golden/make_almt_golden.py's formula_state (also the BERT and GLoMo fixtures'):
// parameter p (named_parameters order), element i = offset + amplitude sin(1 + 0.731 i + 1.913 p + 0.05 ((i * i)
// mod 997)); amplitude 1 / sqrt(last dim) for rank >= 2, else 0.2; offset 1 for LayerNorm weights (rank-1
// "*.weight"). Computed in double, rounded to float32, as the script does.
inline void fill_formula_weights(Module& m) {
  int64_t p = 0;
  for (auto& [name, t] : m.named_parameters()) {
    const bool rank1 = t.dim() < 2;
    const double amp = rank1 ? 0.2 : 1.0 / std::sqrt(double(t.size(-1)));
    const double offset = rank1 && name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0 ? 1.0 : 0.0;
    std::vector<float> v(size_t(t.numel()));
    for (size_t i = 0; i < v.size(); ++i)
      v[i] = float(offset + amp * std::sin(1.0 + 0.731 * double(i) + 1.913 * double(p) + 0.05 * double(i * i % 997)));
    t.copy_(Tensor::from_vector(v, t.shape()));
    ++p;
  }
}

// |a - b| <= 1e-4 |b| + 1e-4 max|b|: a twin's values can span several decades (LayerNorms and learned tokens
// leave the inputs a small share of an output), so the small ones are judged against the tensor's scale.
inline void check_scaled(const Tensor& a, const Tensor& b, const std::string& what) {
  double scale = 0;
  for (float x : b.to_vector()) scale = std::max(scale, double(std::fabs(x)));
  check_close(a, b, 1e-4, 1e-4 * scale + 1e-9, what);
}

inline bool all_finite(const Tensor& t) {
  for (float x : t.to_vector())
    if (!std::isfinite(x)) return false;
  return true;
}

// text [B, T[0], D[0]], audio [B, T[1], D[1]], vision [B, T[2], D[2]] ~ N(0, 1) from `seed`.
inline ModelInput random_input(int64_t B, const std::vector<int64_t>& T, const std::vector<int64_t>& D,
                               uint64_t seed) {
  Generator gen(seed);
  ModelInput in;
  in.text = Tensor::randn({B, T[0], D[0]}, gen);
  in.audio = Tensor::randn({B, T[1], D[1]}, gen);
  in.vision = Tensor::randn({B, T[2], D[2]}, gen);
  return in;
}

// A fixture's text / audio / vision, requiring grad.
inline ModelInput fixture_input(const golden::Fixture& fx) {
  ModelInput in;
  in.text = fx["text"], in.audio = fx["audio"], in.vision = fx["vision"];
  for (Tensor* x : {&in.text, &in.audio, &in.vision}) x->set_requires_grad(true);
  return in;
}

// Every parameter's grad against a float64 twin's fixture: its sum and sum of squares ("gsum." / "gsq.") and,
// where the fixture has "grad.<name>", every element (check_scaled). A parameter the fixture does not summarise
// must have no grad. Grads that are exactly 0 in exact arithmetic (a key bias of softmax attention: it moves every
// score of a row alike) are named by `zero_in_exact` and must be float noise (< 1e-6), the twin's below 1e-20.
// Checks that every summary and full grad of the fixture was used; returns how many were compared in full.
inline int check_parameter_grads(const Module& net, const golden::Fixture& fx,
                                 const std::function<bool(const std::string&)>& zero_in_exact) {
  int full = 0, summarised = 0;
  for (const auto& [name, p] : net.named_parameters()) {
    CAPTURE(name);
    if (!fx.has("gsum." + name)) {
      CHECK_MESSAGE(!p.grad().defined(), "the twin has no grad for " << name);
      continue;
    }
    REQUIRE_MESSAGE(p.grad().defined(), "no grad for " << name);
    std::vector<float> g = p.grad().to_vector();
    ++summarised;
    if (zero_in_exact(name)) {
      CHECK(fx["gsq." + name].item() < 1e-20);
      for (float x : g) CHECK(std::fabs(x) < 1e-6f);
      full += fx.has("grad." + name);
      continue;
    }
    double s = 0, sq = 0;
    for (float x : g) s += x, sq += double(x) * x;
    const double scale = std::sqrt(sq * double(g.size()));  // bounds |sum| whatever the signs
    CHECK(std::fabs(sq - fx["gsq." + name].item()) <= 1e-4 * sq + 1e-12);
    CHECK(std::fabs(s - fx["gsum." + name].item()) <= 1e-4 * scale + 1e-9);
    if (fx.has("grad." + name)) {
      check_scaled(p.grad(), fx["grad." + name], "grad." + name);
      ++full;
    }
  }
  CHECK(summarised == int(fx.with_prefix("gsum.").size()));
  CHECK(full == int(fx.with_prefix("grad.").size()) - 3);  // every full grad the fixture has, inputs aside
  return full;
}

// Two runs' outputs and grads (e.g. a shortcut against the full computation) agree.
inline void check_all_close(const std::vector<Tensor>& got, const std::vector<Tensor>& want, double rtol,
                            double atol) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i)
    check_close(got[i], want[i], rtol, atol, "output / grad " + std::to_string(i));
}

// A label in (-2.5, 2.5) that needs every modality: 2.5 tanh(mean(text) + mean(audio) + mean(vision) / 2), [B, 1].
inline Tensor overfit_labels(const ModelInput& in) {
  Tensor y =
      mul(tanh(add(add(mean(in.text, {1, 2}), mean(in.audio, {1, 2})), mul(mean(in.vision, {1, 2}), 0.5f))), 2.5f);
  return reshape(y, {in.text.size(0), 1}).detach();
}

// `steps` optimizer steps of `net` on one batch (the backbone's auxiliary loss added when it gives one); returns
// the task loss of the first and of the last step.
inline std::pair<float, float> overfit(Backbone& net, const ModelInput& in, const Tensor& y, Optimizer& opt,
                                       int steps, const std::function<Tensor(const Tensor&, const Tensor&)>& loss) {
  float first = 0, last = 0;
  for (int step = 0; step < steps; ++step) {
    ModelOutput out = net.forward(in);
    Tensor task = loss(out.prediction, y);
    if (step == 0) first = task.item();
    last = task.item();
    opt.zero_grad();
    (out.aux_loss.defined() ? add(task, out.aux_loss) : task).backward();
    opt.step();
  }
  return {first, last};
}

}  // namespace msmix::testing
