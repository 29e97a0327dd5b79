#include <cmath>

#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

// d = pred - target = [0.5, -3, 0, 0.75]
Tensor pred4() { return Tensor::from_vector({1, -2, 3, 0.5f}, {4}); }
Tensor target4() { return Tensor::from_vector({0.5f, 1, 3, -0.25f}, {4}); }

std::vector<Reduction> kReductions = {Reduction::None, Reduction::Mean, Reduction::Sum};

}  // namespace

TEST_CASE("l1_loss and mse_loss: hand-computed values for each reduction") {
  check_close(l1_loss(pred4(), target4(), Reduction::None).to_vector(), {0.5f, 3, 0, 0.75f});
  CHECK(l1_loss(pred4(), target4(), Reduction::Sum).item() == doctest::Approx(4.25));
  CHECK(l1_loss(pred4(), target4()).item() == doctest::Approx(4.25 / 4));
  check_close(mse_loss(pred4(), target4(), Reduction::None).to_vector(), {0.25f, 9, 0, 0.5625f});
  CHECK(mse_loss(pred4(), target4(), Reduction::Sum).item() == doctest::Approx(9.8125));
  CHECK(mse_loss(pred4(), target4()).item() == doctest::Approx(9.8125 / 4));
  CHECK(mse_loss(pred4(), target4()).dim() == 0);
}

TEST_CASE("smooth_l1_loss: quadratic below beta, linear above") {
  // beta 1: |d| = 0.5, 0.75 quadratic (0.5 d^2), |d| = 3 linear (3 - 0.5)
  check_close(smooth_l1_loss(pred4(), target4(), 1, Reduction::None).to_vector(), {0.125f, 2.5f, 0, 0.28125f});
  // beta 0.6: 0.5 < 0.6 quadratic (0.5 * 0.25 / 0.6); 0.75 and 3 linear (|d| - 0.3)
  check_close(smooth_l1_loss(pred4(), target4(), 0.6f, Reduction::None).to_vector(),
              {float(0.125 / 0.6), 2.7f, 0, 0.45f});
  CHECK(smooth_l1_loss(pred4(), target4()).item() == doctest::Approx((0.125 + 2.5 + 0.28125) / 4));
  // beta 0 is l1_loss
  check_close(smooth_l1_loss(pred4(), target4(), 0, Reduction::None), l1_loss(pred4(), target4(), Reduction::None));
}

TEST_CASE("regression losses: hand-computed grads and finite differences for pred and target") {
  Tensor p = pred4().set_requires_grad(true), t = target4().set_requires_grad(true);
  l1_loss(p, t).backward();  // sign(d) / 4, with sign(0) = 0
  check_close(p.grad().to_vector(), {0.25f, -0.25f, 0, 0.25f});
  check_close(t.grad().to_vector(), {-0.25f, 0.25f, 0, -0.25f});
  p.zero_grad(), t.zero_grad();
  smooth_l1_loss(p, t, 0.6f, Reduction::Sum).backward();  // d / beta inside, sign(d) outside
  check_close(p.grad().to_vector(), {float(0.5 / 0.6), -1, 0, 1});

  for (Reduction r : kReductions) {
    CAPTURE(int(r));
    auto both = [] { return std::vector<Tensor>{leaf({3, 4}, 50), leaf({3, 4}, 51)}; };
    check_gradients([r](const std::vector<Tensor>& v) { return l1_loss(v[0], v[1], r); }, both());
    check_gradients([r](const std::vector<Tensor>& v) { return mse_loss(v[0], v[1], r); }, both());
    check_gradients([r](const std::vector<Tensor>& v) { return smooth_l1_loss(v[0], v[1], 0.7f, r); }, both());
  }
  // Only pred requires grad: the target gets none.
  Tensor p2 = leaf({5}, 52), t2 = leaf({5}, 53).detach();
  mse_loss(p2, t2).backward();
  CHECK(p2.grad().defined());
  CHECK_FALSE(t2.grad().defined());
}

TEST_CASE("regression losses: shapes must match exactly (no silent broadcasting), and other errors") {
  check_throws_with([] { l1_loss(Tensor::zeros({4, 1}), Tensor::zeros({4})); },
                    {"l1_loss", "pred [4, 1]", "target [4]", "differ in shape", "do not broadcast"});
  check_throws_with([] { mse_loss(Tensor::zeros({4}), Tensor::zeros({1})); }, {"mse_loss", "[4]", "[1]"});
  check_throws_with([] { smooth_l1_loss(Tensor::zeros({4}), Tensor::zeros({4}), -1); }, {"smooth_l1_loss", "beta"});
  check_throws_with([] { mse_loss(Tensor::zeros({4}), Tensor::zeros({4}), Reduction::BatchMean); },
                    {"mse_loss", "batchmean", "kl_div only"});
  check_throws_with([] { l1_loss(Tensor::zeros({0}), Tensor::zeros({0})); }, {"l1_loss", "mean over no elements"});
  CHECK(l1_loss(Tensor::zeros({0}), Tensor::zeros({0}), Reduction::Sum).item() == 0.0f);
}

TEST_CASE("kl_div: t * (log t - input), 0 where t == 0, and its reductions") {
  // input = log q with q = [0.5, 0.25, 0.25] per row; target rows [0.2, 0, 0.8] and [0.5, 0.25, 0.25].
  const double l5 = std::log(0.5), l25 = std::log(0.25);
  Tensor input = Tensor::from_vector({float(l5), float(l25), float(l25), float(l5), float(l25), float(l25)}, {2, 3});
  Tensor target = Tensor::from_vector({0.2f, 0, 0.8f, 0.5f, 0.25f, 0.25f}, {2, 3});
  const double first = 0.2 * (std::log(0.2) - l5) + 0.8 * (std::log(0.8) - l25);  // the second row is KL(q || q) = 0
  std::vector<float> none = kl_div(input, target, Reduction::None).to_vector();
  CHECK(none[1] == 0.0f);
  CHECK(none[0] == doctest::Approx(0.2 * (std::log(0.2) - l5)));
  CHECK(none[3] == doctest::Approx(0).epsilon(1e-6));
  CHECK(kl_div(input, target, Reduction::Sum).item() == doctest::Approx(first).epsilon(1e-5));
  CHECK(kl_div(input, target).item() == doctest::Approx(first / 2).epsilon(1e-5));  // batchmean: / size(0)
  CHECK(kl_div(input, target, Reduction::Mean).item() == doctest::Approx(first / 6).epsilon(1e-5));
  // A zero-mass target entry contributes 0 even where the input log-probability is -inf.
  Tensor masked = Tensor::from_vector({-INFINITY, 0}, {2}), onehot = Tensor::from_vector({0, 1}, {2});
  CHECK(kl_div(masked, onehot, Reduction::Sum).item() == 0.0f);
}

TEST_CASE("kl_div: gradients for input and target") {
  Tensor input = Tensor::from_vector({-1, -2, -0.5f}, {3}).set_requires_grad(true);
  Tensor target = Tensor::from_vector({0.5f, 0, 0.25f}, {3}).set_requires_grad(true);
  kl_div(input, target, Reduction::Sum).backward();
  check_close(input.grad().to_vector(), {-0.5f, 0, -0.25f});  // -t
  // log t + 1 - input where t > 0; 0 at t == 0 (documented; PyTorch gives NaN there)
  check_close(target.grad().to_vector(), {float(std::log(0.5) + 2), 0, float(std::log(0.25) + 1.5)}, 1e-5, 1e-6);
  for (Reduction r : {Reduction::None, Reduction::Mean, Reduction::Sum, Reduction::BatchMean}) {
    CAPTURE(int(r));
    Tensor in = log_softmax(leaf({3, 4}, 54)).detach().set_requires_grad(true);
    Tensor t = softmax(leaf({3, 4}, 55)).detach().set_requires_grad(true);
    check_gradients([r](const std::vector<Tensor>& v) { return kl_div(v[0], v[1], r); }, {in, t}, 1e-3, 1e-2, 2e-3);
  }
  check_throws_with([] { kl_div(Tensor::zeros({2, 3}), Tensor::zeros({3})); }, {"kl_div", "input [2, 3]", "[3]"});
  check_throws_with([] { kl_div(Tensor::scalar(0), Tensor::scalar(0)); }, {"kl_div", "batchmean"});
}

TEST_CASE("cross_entropy: -log_softmax picked at the target class") {
  // Hand values: [0, 0] with class 1 -> log 2; [1, 2, 3] with class 0 -> log(e + e^2 + e^3) - 1.
  CHECK(cross_entropy(Tensor::zeros({1, 2}), Tensor::from_vector({1}, {1})).item() == doctest::Approx(std::log(2.0)));
  const double e = std::exp(1.0);
  CHECK(cross_entropy(Tensor::from_vector({1, 2, 3}, {1, 3}), Tensor::zeros({1})).item() ==
        doctest::Approx(std::log(e + e * e + e * e * e) - 1));

  Tensor logits = leaf({4, 5}, 56, 3);
  Tensor target = Tensor::from_vector({0, 4, 2, 2}, {4});
  std::vector<float> ls = log_softmax(logits).to_vector(), picked;
  for (int n = 0; n < 4; ++n) picked.push_back(-ls[n * 5 + int(target.to_vector()[n])]);
  check_close(cross_entropy(logits, target, Reduction::None).to_vector(), picked, 1e-5, 1e-6);
  double s = picked[0] + picked[1] + picked[2] + picked[3];
  CHECK(cross_entropy(logits, target, Reduction::Sum).item() == doctest::Approx(s).epsilon(1e-5));
  CHECK(cross_entropy(logits, target).item() == doctest::Approx(s / 4).epsilon(1e-5));
  // Large logits stay finite.
  CHECK(cross_entropy(Tensor::from_vector({1000, -1000}, {1, 2}), Tensor::from_vector({1}, {1})).item() ==
        doctest::Approx(2000));
}

TEST_CASE("cross_entropy: gradients, and (softmax - onehot) / N by hand") {
  Tensor target = Tensor::from_vector({0, 4, 2}, {3});
  for (Reduction r : kReductions) {
    CAPTURE(int(r));
    check_gradients([&target, r](const std::vector<Tensor>& v) { return cross_entropy(v[0], target, r); },
                    {leaf({3, 5}, 57)});
  }
  Tensor logits = Tensor::from_vector({0, 0, 1, 1}, {2, 2}).set_requires_grad(true);
  cross_entropy(logits, Tensor::from_vector({1, 0}, {2})).backward();
  check_close(logits.grad().to_vector(), {0.25f, -0.25f, -0.25f, 0.25f});
}

TEST_CASE("cross_entropy: targets must be integral class ids in range, shapes must fit") {
  Tensor logits = Tensor::zeros({3, 4});
  check_throws_with([&] { cross_entropy(logits, Tensor::from_vector({0, 4, 1}, {3})); },
                    {"cross_entropy", "target[1] = 4", "[0, 4)", "[3, 4]"});
  check_throws_with([&] { cross_entropy(logits, Tensor::from_vector({0, 1, 1.5f}, {3})); }, {"target[2] = 1.5"});
  check_throws_with([&] { cross_entropy(logits, Tensor::from_vector({-1, 1, 1}, {3})); }, {"target[0] = -1"});
  check_throws_with([&] { cross_entropy(logits, Tensor::from_vector({0, NAN, 1}, {3})); }, {"target[1]"});
  check_throws_with([&] { cross_entropy(logits, Tensor::zeros({3, 1})); }, {"cross_entropy", "target [3, 1]", "[3]"});
  check_throws_with([] { cross_entropy(Tensor::zeros({4}), Tensor::zeros({4})); }, {"cross_entropy", "[N, C]"});
  check_throws_with([] { cross_entropy(Tensor::zeros({2, 0}), Tensor::zeros({2})); }, {"no classes"});
  check_throws_with([&] { cross_entropy(logits, Tensor::zeros({3}), Reduction::BatchMean); }, {"batchmean"});
  check_throws_with([] { cross_entropy(Tensor::zeros({0, 3}), Tensor::zeros({0})); }, {"mean over no elements"});
  CHECK(cross_entropy(Tensor::zeros({0, 3}), Tensor::zeros({0}), Reduction::None).shape() == Shape{0});
}
