// Optimizers against PyTorch 1.13 (golden fixtures from tests/golden/make_optim_golden.py), the update kernel
// against a hand computation, state checkpoints, LR schedulers against hand-traced sequences, and gradient
// clipping against hand-computed norms.
#include <cmath>
#include <limits>
#include <map>
#include <memory>

#include "msmix/grad_clip.h"
#include "msmix/lr_scheduler.h"
#include "msmix/optimizer.h"
#include "tests/golden/golden.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

using MakeOptimizer = std::function<std::unique_ptr<Optimizer>(const std::vector<Tensor>& params)>;

// Four parameters p0..p3 from the fixture, the optimizer built over them, then five steps replaying the
// recorded grads (a missing grad: none at that step) and comparing every parameter after every step.
void replay(const std::string& file, const MakeOptimizer& make) {
  CAPTURE(file);
  golden::Fixture fx = golden::load("optim/" + file);
  std::vector<Tensor> params;
  for (int k = 0; k < 4; ++k) params.push_back(fx[fmt::format("init.p{}", k)].set_requires_grad());
  std::unique_ptr<Optimizer> opt = make(params);
  int missing = 0;
  for (int step = 1; step <= 5; ++step) {
    for (int k = 0; k < 4; ++k) {
      std::string grad = fmt::format("step{}.grad.p{}", step, k);
      if (!fx.has(grad)) params[k].zero_grad(), missing++;
      else params[k].set_grad(fx[grad]);
    }
    opt->step();
    for (int k = 0; k < 4; ++k)
      check_close(params[k], fx[fmt::format("step{}.param.p{}", step, k)], 1e-5, 1e-6,
                  fmt::format("{} step {} p{}", file, step, k));
  }
  CHECK(missing == 1);  // the fixture skips one param once
}

// Parameter groups as in make_optim_golden.py: {p0, p1} and {p2, p3}.
std::vector<ParamGroup> two_groups(const std::vector<Tensor>& p, ParamGroup g0, ParamGroup g1) {
  g0.params = {p[0], p[1]};
  g1.params = {p[2], p[3]};
  return {g0, g1};
}

}  // namespace

TEST_CASE("Adam, AdamW and SGD match PyTorch 1.13 step by step (two groups, weight decay, a skipped grad)") {
  replay("adam.json", [](const std::vector<Tensor>& p) {
    return std::make_unique<Adam>(two_groups(p, {{}, 0.05f, 0.1f}, {{}, 0.01f, 0.0f}));
  });
  replay("adamw.json", [](const std::vector<Tensor>& p) {
    AdamOptions o = AdamW::defaults();
    o.beta1 = 0.8, o.beta2 = 0.99, o.eps = 1e-6f;
    return std::make_unique<AdamW>(two_groups(p, {{}, 0.05f, 0.2f}, {{}, 0.02f}), o);
  });
  replay("sgd_nesterov.json", [](const std::vector<Tensor>& p) {
    SGDOptions o;
    o.lr = 0.1f, o.momentum = 0.9f, o.nesterov = true;
    return std::make_unique<SGD>(two_groups(p, {{}, 0.1f, 0.01f}, {{}, 0.05f}), o);
  });
  replay("sgd_dampening.json", [](const std::vector<Tensor>& p) {
    SGDOptions o;
    o.lr = 0.1f, o.momentum = 0.8f, o.dampening = 0.3f;
    return std::make_unique<SGD>(two_groups(p, {{}, 0.1f}, {{}, 0.03f, 0.05f}), o);
  });
}

TEST_CASE("adam_update and sgd_update kernels against hand computation") {
  // Adam with eps 0 and a constant grad moves each element by lr * sign(g) per step: step 1 has m = 0.1 g,
  // v = 0.001 g^2, step_size = 0.1 / (1 - 0.9), denom = |g| sqrt(0.001) / sqrt(1 - 0.999); step 2 has
  // m = 0.19 g, v = 0.001999 g^2 and the corrections 1 - 0.9^2, 1 - 0.999^2. Without either bias correction
  // the steps differ.
  float p[2] = {1.0f, -3.0f}, g[2] = {2.0f, -0.5f}, m[2] = {0, 0}, v[2] = {0, 0};
  Tensor param = Tensor::from_vector({1.0f, -3.0f}, {2}).set_requires_grad();
  AdamOptions ao;
  ao.lr = 0.1f, ao.eps = 0;
  Adam adam(std::vector<Tensor>{param}, ao);
  param.set_grad(Tensor::from_vector({2.0f, -0.5f}, {2}));
  adam.step();
  check_close(param.to_vector(), {0.9f, -2.9f}, 1e-6, 1e-7, "adam step 1");
  adam.step();
  check_close(param.to_vector(), {0.8f, -2.8f}, 1e-6, 1e-7, "adam step 2");

  // The raw kernel, with AdamW's param_scale and Adam's L2 term at once: p' = p * 0.5, g' = g + 2 p'.
  cpu::AdamScalars s{0.9f, 0.1f, 0.999f, 0.001f, 0.0f, 2.0f, 0.5f, 1.0f, float(std::sqrt(0.001))};
  cpu::adam_update(p, g, m, v, 2, s);
  // p' = {0.5, -1.5}; g' = {3, -3.5}; m = 0.1 g', v = 0.001 g'^2, denom = |g'|: p = p' - sign(g') * 0.1
  check_close(std::vector<float>(p, p + 2), {0.4f, -1.4f}, 1e-6, 1e-7, "adam kernel");
  check_close(std::vector<float>(m, m + 2), {0.3f, -0.35f}, 1e-6, 1e-7, "exp_avg");
  check_close(std::vector<float>(v, v + 2), {0.009f, 0.01225f}, 1e-6, 1e-9, "exp_avg_sq");

  // SGD: first step buf = g (no dampening), then buf = m buf + (1 - d) g; Nesterov off.
  float q[1] = {1.0f}, gq[1] = {2.0f}, buf[1] = {123.0f};
  cpu::SGDScalars ss{0.5f, 0.9f, 0.5f, 0.0f, false, true};
  cpu::sgd_update(q, gq, buf, 1, ss);  // buf = 2, q = 1 - 0.5 * 2 = 0
  CHECK(buf[0] == 2.0f);
  CHECK(q[0] == 0.0f);
  ss.first_step = false;
  cpu::sgd_update(q, gq, buf, 1, ss);  // buf = 1.8 + 1 = 2.8, q = -1.4
  CHECK(buf[0] == doctest::Approx(2.8));
  CHECK(q[0] == doctest::Approx(-1.4));
}

TEST_CASE("adam_update and sgd_update: long tensors (chunks, threads, vectors) equal the per-element formula") {
  // 100003 elements: several OpenMP chunks and a ragged end. Inputs with both signs, zeros and tiny moments.
  const int64_t n = 100003;
  std::vector<float> p0 = leaf({n}, 1).detach().to_vector(), g = leaf({n}, 2).detach().to_vector();
  std::vector<float> m0 = leaf({n}, 3, 0.1f).detach().to_vector(), v0 = leaf({n}, 4, 0.01f).detach().to_vector();
  for (int64_t i = 0; i < n; i += 97) g[i] = 0;
  for (float& x : v0) x = x * x;
  for (float wd : {0.0f, 0.01f}) {
    for (float scale : {1.0f, 0.999f}) {
      CAPTURE(wd);
      CAPTURE(scale);
      const cpu::AdamScalars s{0.9f, 0.1f, 0.999f, 0.001f, 1e-8f, wd, scale, 2e-3f, 0.0316f};
      std::vector<float> p = p0, m = m0, v = v0, pr = p0, mr = m0, vr = v0;
      cpu::adam_update(p.data(), g.data(), m.data(), v.data(), n, s);
      for (int64_t i = 0; i < n; ++i) {  // the formula, one element at a time (PyTorch's operation order)
        const float pi = pr[i] * s.param_scale, gi = wd != 0 ? g[i] + wd * pi : g[i];
        mr[i] = mr[i] * s.beta1 + s.one_minus_beta1 * gi;
        vr[i] = vr[i] * s.beta2 + s.one_minus_beta2 * gi * gi;
        pr[i] = pi - s.step_size * mr[i] / (std::sqrt(vr[i]) / s.bias_correction2_sqrt + s.eps);
      }
      check_close(p, pr, 1e-6, 0, "param");
      check_close(m, mr, 1e-6, 0, "exp_avg");
      check_close(v, vr, 1e-6, 0, "exp_avg_sq");
    }
  }
  for (bool nesterov : {false, true}) {
    for (bool first : {false, true}) {
      CAPTURE(nesterov);
      CAPTURE(first);
      const cpu::SGDScalars s{0.1f, 0.9f, nesterov ? 1.0f : 0.7f, 0.005f, nesterov, first};
      std::vector<float> p = p0, buf = m0, pr = p0, br = m0;
      cpu::sgd_update(p.data(), g.data(), buf.data(), n, s);
      for (int64_t i = 0; i < n; ++i) {
        float gi = g[i] + s.weight_decay * pr[i];
        br[i] = first ? gi : br[i] * s.momentum + s.one_minus_dampening * gi;
        gi = nesterov ? gi + s.momentum * br[i] : br[i];
        pr[i] = pr[i] - s.lr * gi;
      }
      check_close(p, pr, 1e-6, 0, "sgd param");
      check_close(buf, br, 1e-6, 0, "momentum_buffer");
    }
  }
}

TEST_CASE("optimizer: skips params without grad or requires_grad, zero_grad, groups, errors") {
  Tensor a = Tensor::ones({3}).set_requires_grad(), b = Tensor::ones({2}).set_requires_grad();
  Tensor frozen = Tensor::ones({2});
  SGDOptions o;
  o.lr = 0.5f;
  SGD sgd({{{a}}, {{b, frozen}, 0.25f}}, o);
  CHECK(sgd.num_groups() == 2);
  CHECK(sgd.lr(0) == 0.5f);
  CHECK(sgd.lr(1) == 0.25f);
  a.set_grad(Tensor::ones({3}));
  frozen.set_grad(Tensor::ones({2}));  // a grad on a tensor that does not require grad: ignored
  sgd.step();                           // b has no grad: skipped
  check_close(a.to_vector(), {0.5f, 0.5f, 0.5f}, 0, 0, "a");
  check_close(b.to_vector(), {1.0f, 1.0f}, 0, 0, "b");
  check_close(frozen.to_vector(), {1.0f, 1.0f}, 0, 0, "frozen");
  sgd.zero_grad();
  CHECK_FALSE(a.grad().defined());
  CHECK_FALSE(b.grad().defined());
  sgd.set_lr(1, 2.0f);
  b.set_grad(Tensor::full({2}, 0.5f));
  sgd.step();
  check_close(b.to_vector(), {0.0f, 0.0f}, 0, 0, "b after set_lr");
  check_close(a.to_vector(), {0.5f, 0.5f, 0.5f}, 0, 0, "a without grad");

  // Gradient flows from a real backward through the parameters.
  Tensor w = Tensor::full({2}, 3.0f).set_requires_grad();
  Adam adam(std::vector<Tensor>{w});
  sum(mul(w, w)).backward();
  adam.step();
  check_close(w.to_vector(), {3.0f - 1e-3f, 3.0f - 1e-3f}, 1e-6, 1e-7, "adam from backward");
  CHECK(AdamW(std::vector<Tensor>{Tensor::ones({1}).set_requires_grad()}).param_groups()[0].weight_decay == 0.01f);

  Tensor leaf = Tensor::ones({2}).set_requires_grad();
  Tensor nonleaf = mul(leaf, 2.0f);
  check_throws_with([] { Adam(std::vector<Tensor>{}); }, {"Adam", "empty parameter list"});
  check_throws_with([&] { SGD(std::vector<Tensor>{nonleaf}, o); }, {"SGD", "non-leaf", "[2] cpu"});
  check_throws_with([&] { Adam(std::vector<ParamGroup>{{{leaf}}, {{leaf}}}); }, {"Adam", "more than once"});
  check_throws_with([&] { Adam({{{leaf}, -1.0f}}); }, {"Adam", "learning rate", "-1"});
  check_throws_with([&] {
    SGDOptions bad;
    bad.momentum = 0.9f, bad.dampening = 0.1f, bad.nesterov = true;
    SGD(std::vector<Tensor>{leaf}, bad);
  }, {"SGD", "Nesterov", "dampening"});
  check_throws_with([&] {
    AdamOptions bad;
    bad.beta2 = 1.0;
    AdamW(std::vector<Tensor>{leaf}, bad);
  }, {"AdamW", "betas"});
  check_throws_with([&] { sgd.lr(2); }, {"SGD", "group 2"});
}

TEST_CASE("optimizer state_dict: a reloaded optimizer continues bit-exactly; bad states are reported") {
  auto run = [](Optimizer& opt, std::vector<Tensor>& params, int from, int to) {
    for (int s = from; s < to; ++s) {
      for (size_t k = 0; k < params.size(); ++k) params[k].set_grad(leaf(params[k].shape(), 100 + 10 * s + k).detach());
      opt.step();
    }
  };
  auto fresh = [] { return std::vector<Tensor>{leaf({3, 2}, 1), leaf({4}, 2)}; };
  AdamOptions o = AdamW::defaults();
  o.lr = 0.01f;
  std::vector<Tensor> pa = fresh(), pb = fresh();
  AdamW a({{{pa[0]}}, {{pa[1]}, 0.002f}}, o);
  run(a, pa, 0, 3);
  std::map<std::string, Tensor> state = a.state_dict();
  CHECK(state.size() == 4 + 2 * 3);
  CHECK(state.at("state.1.step").item() == 3.0f);
  CHECK(state.at("state.1.exp_avg_sq").shape() == Shape{4});
  CHECK(state.at("param_groups.1.lr").item() == 0.002f);

  AdamW b(std::vector<ParamGroup>{{{pb[0]}}, {{pb[1]}}}, o);  // group 1's lr comes from the state
  for (size_t k = 0; k < pb.size(); ++k) pb[k].copy_(pa[k]);
  b.load_state_dict(state);
  CHECK(b.lr(1) == 0.002f);
  run(a, pa, 3, 5);
  run(b, pb, 3, 5);
  for (size_t k = 0; k < pa.size(); ++k) check_close(pb[k], pa[k], 0, 0, "resumed param");
  state.at("state.0.exp_avg").fill_(7);  // the loaded state is a copy, not an alias
  CHECK(b.state_dict().at("state.0.exp_avg").to_vector()[0] != 7.0f);

  std::map<std::string, Tensor> bad = state;
  bad.erase("state.1.exp_avg");
  bad["state.0.exp_avg_sq"] = Tensor::zeros({5});
  bad["state.9.step"] = Tensor::scalar(1);
  bad["state.0.momentum_buffer"] = Tensor::zeros({3, 2});
  bad["param_groups.x.lr"] = Tensor::scalar(1);
  check_throws_with([&] { b.load_state_dict(bad); },
                    {"AdamW.load_state_dict", "state.1.exp_avg: missing", "state.0.exp_avg_sq: shape [5]",
                     "state.9.step: no parameter 9", "state.0.momentum_buffer: unexpected", "param_groups.x.lr"});
  CHECK(b.state_dict().at("state.0.step").item() == 5.0f);  // a failed load changes nothing
}

TEST_CASE("ReduceLROnPlateau follows a hand-traced run: threshold, patience, cooldown, min_lr, eps") {
  Tensor a = Tensor::ones({1}).set_requires_grad(), b = Tensor::ones({1}).set_requires_grad();
  SGDOptions so;
  so.lr = 1.0f;
  SGD sgd({{{a}}, {{b}, 0.1f}}, so);
  ReduceLROnPlateau::Options o;
  o.factor = 0.5, o.patience = 2, o.threshold = 0.1, o.cooldown = 1, o.min_lrs = {0.2, 0.0};
  ReduceLROnPlateau sched(sgd, o);
  // Rel mode: an improvement needs metric < best * 0.9. Bad epochs counted after each step in comments.
  struct Epoch {
    double metric;
    int64_t bad;
    bool reduced;
    double lr0, lr1;
  };
  std::vector<Epoch> trace = {
      {10.0, 0, false, 1.0, 0.1},    // first metric: best = 10
      {9.5, 1, false, 1.0, 0.1},     // not < 9
      {9.1, 2, false, 1.0, 0.1},     // not < 9; 2 bad epochs is not more than the patience
      {8.9, 0, false, 1.0, 0.1},     // < 9: best = 8.9
      {8.5, 1, false, 1.0, 0.1},     // not < 8.01
      {8.5, 2, false, 1.0, 0.1},     //
      {8.5, 0, true, 0.5, 0.05},     // 3 > patience: both groups halve, cooldown 1
      {8.5, 0, false, 0.5, 0.05},    // cooldown: the bad epoch is not counted
      {8.5, 1, false, 0.5, 0.05},    //
      {8.5, 2, false, 0.5, 0.05},    //
      {8.5, 0, true, 0.25, 0.025},   // reduce again
      {1.0, 0, false, 0.25, 0.025},  // improvement (and cooldown)
      {1.0, 1, false, 0.25, 0.025},  //
      {std::nan(""), 2, false, 0.25, 0.025},  // NaN is a bad epoch
      {1.0, 0, true, 0.2, 0.0125},   // group 0 stops at its min_lr 0.2
      {1.0, 0, false, 0.2, 0.0125},  // cooldown
      {1.0, 1, false, 0.2, 0.0125},
      {1.0, 2, false, 0.2, 0.0125},
      {1.0, 0, true, 0.2, 0.00625},  // group 0 at min_lr keeps it; group 1 still halves
  };
  for (size_t e = 0; e < trace.size(); ++e) {
    CAPTURE(e);
    bool reduced = sched.step(trace[e].metric);
    CHECK(reduced == trace[e].reduced);
    CHECK(sched.state().num_bad_epochs == trace[e].bad);
    CHECK(sgd.lr(0) == doctest::Approx(trace[e].lr0).epsilon(1e-6));
    CHECK(sgd.lr(1) == doctest::Approx(trace[e].lr1).epsilon(1e-6));
  }
  CHECK(sched.state().best == 1.0);
  CHECK(sched.state().last_epoch == int64_t(trace.size()));

  // eps: a reduction smaller than eps is skipped.
  Tensor c = Tensor::ones({1}).set_requires_grad();
  so.lr = 1e-8f;
  SGD tiny(std::vector<Tensor>{c}, so);
  ReduceLROnPlateau::Options to;
  to.patience = 0;
  ReduceLROnPlateau never(tiny, to);
  never.step(1.0);
  CHECK_FALSE(never.step(1.0));  // 1e-8 - 1e-9 < eps
  CHECK(tiny.lr(0) == 1e-8f);

  // Max mode with an absolute threshold: an improvement needs metric > best + 0.5.
  ReduceLROnPlateau::Options mo;
  mo.mode = ReduceLROnPlateau::Mode::Max, mo.threshold_mode = ReduceLROnPlateau::ThresholdMode::Abs;
  mo.threshold = 0.5;
  ReduceLROnPlateau up(sgd, mo);
  up.step(1.0);
  up.step(1.4);
  CHECK(up.state().num_bad_epochs == 1);
  up.step(1.6);
  CHECK(up.state().num_bad_epochs == 0);
  CHECK(up.state().best == 1.6);

  check_throws_with([&] {
    ReduceLROnPlateau::Options bad;
    bad.factor = 1.0;
    ReduceLROnPlateau(sgd, bad);
  }, {"ReduceLROnPlateau", "factor"});
  check_throws_with([&] {
    ReduceLROnPlateau::Options bad;
    bad.min_lrs = {0.1};
    ReduceLROnPlateau(sgd, bad);
  }, {"ReduceLROnPlateau", "expected 2 min_lrs"});
}

TEST_CASE("WarmupCosine: linear warmup, cosine to min_lr_ratio, held after total_steps") {
  // warmup 4, total 12, min ratio 0.1: s < 4 -> (s + 1) / 4; then 0.1 + 0.9 * 0.5 * (1 + cos(pi (s - 4) / 8)).
  std::vector<double> expected = {0.25, 0.5, 0.75, 1.0, 1.0};
  const double pi = 3.14159265358979323846;
  for (int s = 5; s <= 14; ++s) expected.push_back(s >= 12 ? 0.1 : 0.1 + 0.45 * (1 + std::cos(pi * (s - 4) / 8)));
  CHECK(expected[8] == doctest::Approx(0.55));                    // halfway through the decay
  CHECK(expected[10] == doctest::Approx(0.2318019484660536));  // 0.1 + 0.45 * (1 - 1/sqrt(2))
  Tensor a = Tensor::ones({1}).set_requires_grad(), b = Tensor::ones({1}).set_requires_grad();
  AdamOptions ao;
  ao.lr = 2.0f;
  Adam adam({{{a}}, {{b}, 0.5f}}, ao);
  WarmupCosine sched(adam, 4, 12, 0.1);
  for (size_t s = 0; s < expected.size(); ++s) {
    CAPTURE(s);
    CHECK(sched.next_step() == int64_t(s));
    CHECK(adam.lr(0) == doctest::Approx(2.0 * expected[s]).epsilon(1e-6));
    CHECK(adam.lr(1) == doctest::Approx(0.5 * expected[s]).epsilon(1e-6));
    sched.step();
  }
  sched.load_state(2);
  CHECK(adam.lr(0) == doctest::Approx(1.5));
  CHECK(WarmupCosine::factor(0, 0, 10, 0) == 1.0);  // no warmup
  CHECK(WarmupCosine::factor(5, 0, 10, 0) == doctest::Approx(0.5));
  check_throws_with([&] { WarmupCosine(adam, 5, 4); }, {"WarmupCosine", "warmup 5 total 4"});
  check_throws_with([&] { WarmupCosine(adam, 1, 4, 1.5); }, {"WarmupCosine", "min_lr_ratio"});
}

TEST_CASE("clip_grad_norm and clip_grad_value against hand-computed values") {
  Tensor a = Tensor::zeros({3}).set_requires_grad(), b = Tensor::zeros({2, 2}).set_requires_grad();
  Tensor none = Tensor::zeros({2}).set_requires_grad();  // no grad: ignored
  auto set = [&] {
    a.set_grad(Tensor::from_vector({1, 2, 2}, {3}));
    b.set_grad(Tensor::from_vector({4, -2, 0, 1}, {2, 2}));
  };
  set();
  // norm = sqrt(1 + 4 + 4 + 16 + 4 + 0 + 1) = sqrt(30)
  const double norm = std::sqrt(30.0);
  CHECK(clip_grad_norm({a, b, none}, 10.0f).item() == doctest::Approx(norm).epsilon(1e-7));
  check_close(a.grad().to_vector(), {1, 2, 2}, 0, 0, "under max_norm: unchanged");
  CHECK(clip_grad_norm({a, b, none}, 2.0f).item() == doctest::Approx(norm).epsilon(1e-7));
  const double coef = 2.0 / (norm + 1e-6);
  check_close(a.grad().to_vector(), {float(coef), float(2 * coef), float(2 * coef)}, 1e-6, 0, "a clipped");
  check_close(b.grad().to_vector(), {float(4 * coef), float(-2 * coef), 0, float(coef)}, 1e-6, 0, "b clipped");
  CHECK(clip_grad_norm({a, b}, 100.0f).item() == doctest::Approx(2.0).epsilon(1e-6));  // the new norm
  CHECK(clip_grad_norm({none}, 1.0f).item() == 0.0f);

  // Non-finite: returned, grads untouched.
  set();
  b.grad().data()[1] = std::numeric_limits<float>::infinity();
  CHECK(std::isinf(clip_grad_norm({a, b}, 1.0f).item()));
  check_close(a.grad().to_vector(), {1, 2, 2}, 0, 0, "inf norm: untouched");
  b.grad().data()[1] = std::nanf("");
  CHECK(std::isnan(clip_grad_norm({a, b}, 1.0f).item()));
  check_close(a.grad().to_vector(), {1, 2, 2}, 0, 0, "nan norm: untouched");

  set();
  b.grad().data()[3] = std::nanf("");
  clip_grad_value({a, b, none}, 1.5f);
  check_close(a.grad().to_vector(), {1, 1.5f, 1.5f}, 0, 0, "a clamped");
  std::vector<float> bg = b.grad().to_vector();
  check_close({bg[0], bg[1], bg[2]}, {1.5f, -1.5f, 0}, 0, 0, "b clamped");
  CHECK(std::isnan(bg[3]));
  check_throws_with([&] { clip_grad_value({a}, -1); }, {"clip_grad_value", "-1"});
  check_throws_with([&] { clip_grad_norm({a}, -1); }, {"clip_grad_norm", "-1"});
}
