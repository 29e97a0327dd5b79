// Basic modules (Linear, LayerNorm, BatchNorm1d, Dropout, Conv1d, Embedding) and their initialisation:
// forward and backward against PyTorch 1.13 (golden fixtures from tests/golden/make_basic_golden.py),
// PyTorch's parameter names, train/eval, state dicts, and the init distributions.
#include <algorithm>
#include <cmath>
#include <set>

#include "models/batch_norm.h"
#include "models/conv1d.h"
#include "models/dropout.h"
#include "models/embedding.h"
#include "models/init.h"
#include "models/layer_norm.h"
#include "models/linear.h"
#include "tests/golden/golden.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

// One fixture case (see make_basic_golden.py): loads state.* into the module, runs forward in the given
// mode, backward of sum(out * w), and compares out, grad.x, grad.<param> and state_after.<buffer>.
template <class M>
void check_golden(const std::string& case_name, M& module, bool training) {
  CAPTURE(case_name);
  golden::Fixture fx = golden::load("basic/" + case_name + ".json");
  module.load_state_dict(fx.with_prefix("state."));
  module.train(training);
  Tensor x = fx["x"];
  if (fx.has("grad.x")) x.set_requires_grad(true);
  Tensor y = module.forward(x);
  check_close(y, fx["out"], 1e-4, 1e-5, case_name + " out");
  y.backward(fx["w"]);
  if (fx.has("grad.x")) check_close(x.grad(), fx["grad.x"], 1e-4, 1e-5, case_name + " grad.x");
  for (const auto& [name, p] : module.named_parameters()) {
    REQUIRE_MESSAGE(p.grad().defined(), case_name << ": no grad for " << name);
    check_close(p.grad(), fx["grad." + name], 1e-4, 1e-5, case_name + " grad." + name);
  }
  for (const auto& [name, b] : module.named_buffers())
    check_close(b, fx["state_after." + name], 1e-4, 1e-5, case_name + " state_after." + name);
}

// Sample mean and standard deviation, in double.
std::pair<double, double> mean_std(const Tensor& t) {
  std::vector<float> v = t.to_vector();
  double s = 0, s2 = 0;
  for (float x : v) s += x;
  double mean = s / v.size();
  for (float x : v) s2 += (x - mean) * (x - mean);
  return {mean, std::sqrt(s2 / (v.size() - 1))};
}

float max_abs(const Tensor& t) {
  float m = 0;
  for (float x : t.to_vector()) m = std::max(m, std::fabs(x));
  return m;
}

// U(-bound, bound): every value inside, the extremes reached, mean 0 and std bound / sqrt(3).
void check_uniform(const Tensor& t, double bound, const std::string& what) {
  CAPTURE(what);
  auto [mean, std] = mean_std(t);
  CHECK(max_abs(t) <= bound);
  CHECK(max_abs(t) >= 0.99 * bound);
  CHECK(std::fabs(mean) < 0.02 * bound);
  CHECK(std == doctest::Approx(bound / std::sqrt(3.0)).epsilon(0.02));
}

}  // namespace

// ---------------------------------------------------------------- against PyTorch

TEST_CASE("modules golden: Linear with and without bias, 3-D input") {
  Linear with_bias(5, 4), without_bias(6, 3, false);
  check_golden("linear", with_bias, true);
  check_golden("linear_nobias", without_bias, true);
}

TEST_CASE("modules golden: LayerNorm with random weight and bias") {
  LayerNorm norm(6);
  check_golden("layer_norm", norm, true);
}

TEST_CASE("modules golden: BatchNorm1d on [N, C] and [N, C, L], train (running stats updated) and eval") {
  for (const char* tag : {"2d", "3d"}) {
    BatchNorm1d train_bn(4), eval_bn(4);
    check_golden(std::string("batch_norm_") + tag + "_train", train_bn, true);
    check_golden(std::string("batch_norm_") + tag + "_eval", eval_bn, false);
  }
}

TEST_CASE("modules golden: Conv1d with padding 0 and 2") {
  Conv1d pad0(3, 4, 3), pad2(3, 4, 3, 2);
  check_golden("conv1d_pad0", pad0, true);
  check_golden("conv1d_pad2", pad2, true);
}

TEST_CASE("modules golden: Embedding with padding_idx gives the padding row no grad") {
  Embedding emb(6, 3, 0);
  check_golden("embedding_pad0", emb, true);
  // The fixture's padding row is non-zero and id 0 occurs twice: its grad row is exactly 0.
  std::vector<float> g = emb.weight.grad().to_vector();
  CHECK(std::all_of(g.begin(), g.begin() + 3, [](float v) { return v == 0; }));
}

TEST_CASE("modules golden: kl_div batchmean, grads of input and target; zero targets") {
  for (const char* name : {"kl_div", "kl_div_zero_target"}) {
    CAPTURE(name);
    golden::Fixture fx = golden::load(std::string("basic/") + name + ".json");
    Tensor input = fx["input"], target = fx["target"];
    input.set_requires_grad(true);
    if (fx.has("grad.target")) target.set_requires_grad(true);
    Tensor loss = kl_div(input, target, Reduction::BatchMean);
    check_close(loss, fx["out"], 1e-4, 1e-5, "kl_div out");
    loss.backward(fx["w"]);
    check_close(input.grad(), fx["grad.input"], 1e-4, 1e-5, "kl_div grad.input");
    if (fx.has("grad.target")) check_close(target.grad(), fx["grad.target"], 1e-4, 1e-5, "kl_div grad.target");
  }
}

TEST_CASE("golden: a missing tensor or file is an error naming it") {
  check_throws_with([] { golden::load("basic/no_such_case.json"); }, {"no_such_case.json"});
  golden::Fixture fx = golden::load("basic/linear.json");
  check_throws_with([&] { fx["nope"]; }, {"basic/linear.json", "'nope'"});
  CHECK(fx.with_prefix("state.").size() == 2);
}

// ---------------------------------------------------------------- names, shapes, defaults

TEST_CASE("modules: parameter and buffer names, shapes and counts match PyTorch") {
  Linear fc(5, 4);
  CHECK(names(fc.named_parameters()) == std::vector<std::string>{"weight", "bias"});
  CHECK(fc.weight.shape() == Shape{4, 5});
  CHECK(fc.bias.shape() == Shape{4});
  CHECK(fc.num_parameters() == 24);
  CHECK(names(Linear(5, 4, false).named_parameters()) == std::vector<std::string>{"weight"});

  LayerNorm ln(7);
  CHECK(names(ln.named_parameters()) == std::vector<std::string>{"weight", "bias"});
  CHECK(ln.weight.to_vector() == std::vector<float>(7, 1.0f));
  CHECK(ln.bias.to_vector() == std::vector<float>(7, 0.0f));
  CHECK(LayerNorm(7, 1e-5f, false).named_parameters().empty());

  BatchNorm1d bn(3);
  CHECK(names(bn.named_parameters()) == std::vector<std::string>{"weight", "bias"});
  CHECK(names(bn.named_buffers()) ==
        std::vector<std::string>{"running_mean", "running_var", "num_batches_tracked"});
  CHECK(bn.running_mean.to_vector() == std::vector<float>(3, 0.0f));
  CHECK(bn.running_var.to_vector() == std::vector<float>(3, 1.0f));
  CHECK(bn.num_batches_tracked.shape() == Shape{});
  CHECK(bn.num_batches_tracked.item() == 0);
  CHECK(bn.state_dict().size() == 5);
  CHECK(bn.num_parameters() == 6);
  BatchNorm1d bare(3, 1e-5f, 0.1f, false, false);
  CHECK(bare.named_parameters().empty());
  CHECK(bare.named_buffers().empty());

  Conv1d conv(3, 8, 5, 2);
  CHECK(names(conv.named_parameters()) == std::vector<std::string>{"weight", "bias"});
  CHECK(conv.weight.shape() == Shape{8, 3, 5});
  CHECK(conv.num_parameters() == 8 * 3 * 5 + 8);

  Embedding emb(10, 4);
  CHECK(names(emb.named_parameters()) == std::vector<std::string>{"weight"});
  CHECK(emb.weight.shape() == Shape{10, 4});
  CHECK(Dropout(0.3f).state_dict().empty());

  // Parameters are leaves that require grad; init is not recorded.
  for (const Tensor& p : {fc.weight, fc.bias, conv.weight, emb.weight, bn.weight}) {
    CHECK(p.requires_grad());
    CHECK(p.is_leaf());
  }
  CHECK(!bn.running_mean.requires_grad());
}

namespace {
// A composite as a backbone would build it: dotted names, recursive train/eval.
struct TwoLayer : Module {
  std::shared_ptr<Linear> fc = register_module("fc", std::make_shared<Linear>(4, 3));
  std::shared_ptr<BatchNorm1d> bn = register_module("bn", std::make_shared<BatchNorm1d>(3));
  std::shared_ptr<Dropout> drop = register_module("drop", std::make_shared<Dropout>(0.5f));
  Tensor forward(const Tensor& x) { return drop->forward(bn->forward(fc->forward(x))); }
};
}  // namespace

TEST_CASE("modules: nested modules get dotted names; train/eval reaches every child") {
  TwoLayer net;
  CHECK(names(net.named_parameters()) == std::vector<std::string>{"fc.weight", "fc.bias", "bn.weight", "bn.bias"});
  CHECK(names(net.named_buffers()) ==
        std::vector<std::string>{"bn.running_mean", "bn.running_var", "bn.num_batches_tracked"});
  CHECK(net.num_parameters() == 4 * 3 + 3 + 3 + 3);

  Tensor x = Tensor::randn({8, 4});
  CHECK(net.bn->is_training());
  Tensor y = net.forward(x);
  std::vector<float> mean_after_train = net.bn->running_mean.to_vector();
  CHECK(net.bn->num_batches_tracked.item() == 1);
  CHECK(mean_after_train != std::vector<float>(3, 0.0f));

  net.eval();
  CHECK(!net.fc->is_training());
  CHECK(!net.bn->is_training());
  CHECK(!net.drop->is_training());
  Tensor a = net.forward(x), b = net.forward(x);  // eval: deterministic, stats frozen
  CHECK(a.to_vector() == b.to_vector());
  CHECK(net.bn->running_mean.to_vector() == mean_after_train);
  CHECK(net.bn->num_batches_tracked.item() == 1);

  net.train();
  CHECK(net.drop->is_training());
  net.forward(x);
  net.forward(x);
  CHECK(net.bn->num_batches_tracked.item() == 3);
}

TEST_CASE("BatchNorm1d: running stats follow PyTorch's momentum update with the unbiased variance") {
  BatchNorm1d bn(2, 1e-5f, 0.25f);
  // Channel 0 sees {1, 3, 5, 7} over N=2, L=2; channel 1 sees {0, 0, 2, 2}.
  Tensor x = Tensor::from_vector({1, 3, 0, 0, 5, 7, 2, 2}, {2, 2, 2});
  bn.forward(x);
  // mean 4 and 1; unbiased var 20/3 and 4/3.
  check_close(bn.running_mean, Tensor::from_vector({0.25f * 4, 0.25f * 1}, {2}), 1e-6, 1e-6, "running_mean");
  check_close(bn.running_var, Tensor::from_vector({0.75f + 0.25f * 20 / 3, 0.75f + 0.25f * 4 / 3}, {2}), 1e-6, 1e-6,
              "running_var");
  // Eval normalises with the running stats: (x - rm) / sqrt(rv + eps).
  bn.eval();
  std::vector<float> y = bn.forward(x).to_vector(), rm = bn.running_mean.to_vector(), rv = bn.running_var.to_vector();
  CHECK(y[0] == doctest::Approx((1 - rm[0]) / std::sqrt(rv[0] + 1e-5)));
  CHECK(y[2] == doctest::Approx((0 - rm[1]) / std::sqrt(rv[1] + 1e-5)));
}

TEST_CASE("BatchNorm1d without running stats uses batch statistics in eval too") {
  BatchNorm1d bn(3, 1e-5f, 0.1f, true, false);
  Tensor x = Tensor::randn({5, 3});
  Tensor train_out = bn.forward(x);
  bn.eval();
  check_close(bn.forward(x), train_out, 1e-6, 1e-6, "eval == train");
}

TEST_CASE("Dropout: identity in eval, masks and scales in training") {
  manual_seed(3);
  Dropout drop(0.25f);
  Tensor x = Tensor::ones({4000});
  std::vector<float> y = drop.forward(x).to_vector();
  size_t zeros = std::count(y.begin(), y.end(), 0.0f);
  size_t scaled = std::count(y.begin(), y.end(), 1.0f / 0.75f);
  CHECK(zeros + scaled == y.size());
  CHECK(double(zeros) / y.size() == doctest::Approx(0.25).epsilon(0.1));
  drop.eval();
  CHECK(drop.forward(x).to_vector() == x.to_vector());
  check_throws_with([] { Dropout(1.5f); }, {"Dropout", "1.5"});
}

TEST_CASE("Embedding: looks up rows; the padding row starts at zero") {
  manual_seed(11);
  Embedding emb(5, 3, 2);
  std::vector<float> w = emb.weight.to_vector();
  CHECK(std::all_of(w.begin() + 6, w.begin() + 9, [](float v) { return v == 0; }));
  CHECK(std::count(w.begin(), w.end(), 0.0f) == 3);  // only the padding row
  Tensor ids = Tensor::from_vector({4, 2, 0}, {3});
  std::vector<float> out = emb.forward(ids).to_vector();
  CHECK(std::vector<float>(out.begin(), out.begin() + 3) == std::vector<float>(w.begin() + 12, w.end()));
  CHECK(std::vector<float>(out.begin() + 3, out.begin() + 6) == std::vector<float>(3, 0.0f));
  {
    NoGradGuard no_grad;  // the same values without the grad masking
    CHECK(emb.forward(ids).to_vector() == out);
  }
  check_throws_with([] { Embedding(5, 3, 5); }, {"padding_idx", "[0, 5)", "5"});
}

// ---------------------------------------------------------------- state dicts, devices

TEST_CASE("modules: state_dict / load_state_dict round trip keeps the members' handles") {
  BatchNorm1d a(3), b(3);
  a.forward(Tensor::randn({6, 3}));  // running stats and count move away from the defaults
  {
    NoGradGuard no_grad;
    a.weight.copy_(Tensor::randn({3}));
  }
  Tensor b_weight = b.weight;  // a handle taken before loading
  b.load_state_dict(a.state_dict());
  for (const auto& [name, t] : a.state_dict()) check_close(b.state_dict().at(name), t, 0, 0, name);
  CHECK(b_weight.same(b.weight));
  CHECK(b.named_parameters()[0].second.same(b.weight));
  CHECK(b.num_batches_tracked.item() == 1);
  // A copy, not shared storage: changing a afterwards leaves b alone.
  a.weight.fill_(7);
  CHECK(b.weight.to_vector() != a.weight.to_vector());
}

TEST_CASE("modules: load_state_dict lists every missing, unexpected and mis-shaped name in one error") {
  Linear fc(5, 4);
  std::map<std::string, Tensor> state{{"weight", Tensor::zeros({5, 4})}, {"foo", Tensor::zeros({1})}};
  check_throws_with([&] { fc.load_state_dict(state); },
                    {"missing [bias]", "unexpected [foo]", "weight (expected [4, 5], got [5, 4])"});
  // Not strict: missing and unexpected names are fine, a wrong shape is still an error.
  state["weight"] = Tensor::zeros({4, 5});
  fc.load_state_dict(state, false);
  CHECK(fc.weight.to_vector() == std::vector<float>(20, 0.0f));
  state["weight"] = Tensor::zeros({4});
  check_throws_with([&] { fc.load_state_dict(state, false); }, {"mis-shaped [weight (expected [4, 5], got [4])]"});
}

TEST_CASE("modules: to(cpu) on a CPU module is a no-op") {
  Conv1d conv(2, 3, 3);
  std::vector<float> before = conv.weight.to_vector();
  const float* data = conv.weight.data();
  Tensor handle = conv.weight;
  conv.to(Device::cpu());
  CHECK(conv.weight.data() == data);
  CHECK(handle.same(conv.weight));
  CHECK(conv.weight.device() == Device::cpu());
  CHECK(conv.weight.to_vector() == before);
  CHECK(conv.forward(Tensor::randn({1, 2, 4})).shape() == Shape{1, 3, 2});
}

TEST_CASE("modules: bad inputs name the module and the shapes") {
  Linear fc(5, 4);
  check_throws_with([&] { fc.forward(Tensor::zeros({2, 3})); }, {"Linear(5, 4)", "[..., 5]", "[2, 3]"});
  LayerNorm ln(6);
  check_throws_with([&] { ln.forward(Tensor::zeros({2, 5})); }, {"LayerNorm(6)", "[2, 5]"});
  BatchNorm1d bn(4);
  check_throws_with([&] { bn.forward(Tensor::zeros({2, 3, 5})); }, {"BatchNorm1d(4)", "[2, 3, 5]"});
  check_throws_with([&] { bn.forward(Tensor::zeros({2, 4, 5, 1})); }, {"BatchNorm1d(4)", "[2, 4, 5, 1]"});
  Conv1d conv(3, 2, 3);
  check_throws_with([&] { conv.forward(Tensor::zeros({1, 2, 8})); }, {"conv1d", "[1, 2, 8]"});
  check_throws_with([] { Linear(-1, 3); }, {"Linear", "-1"});
  check_throws_with([] { Conv1d(3, 2, 0); }, {"Conv1d", "kernel=0"});
}

// ---------------------------------------------------------------- initialisation

TEST_CASE("init: Linear(768, 128) weights U(+-1/sqrt(768)), std 1/sqrt(3*768); bias the same bound") {
  manual_seed(1);
  Linear fc(768, 128);
  check_uniform(fc.weight, 1 / std::sqrt(768.0), "weight");
  CHECK(max_abs(fc.bias) <= 1 / std::sqrt(768.0));
  CHECK(max_abs(fc.bias) > 0.5 / std::sqrt(768.0));  // 128 draws: one is near the bound
}

TEST_CASE("init: Conv1d's fan_in is Cin * K") {
  manual_seed(2);
  Conv1d conv(16, 300, 5);
  check_uniform(conv.weight, 1 / std::sqrt(80.0), "weight");
  CHECK(max_abs(conv.bias) <= 1 / std::sqrt(80.0));
  CHECK(max_abs(conv.bias) > 0.9 / std::sqrt(80.0));  // 300 draws
}

TEST_CASE("init: fan in and out, kaiming and xavier bounds, normal, uniform, zeros and ones") {
  Tensor w = Tensor::empty({64, 32, 3});
  CHECK(init::fan_in_and_fan_out(w) == std::pair<int64_t, int64_t>{96, 192});
  CHECK(init::fan_in_and_fan_out(Tensor::empty({7, 9})) == std::pair<int64_t, int64_t>{9, 7});
  Tensor v = Tensor::empty({5});
  check_throws_with([&] { init::kaiming_uniform_(v); }, {"at least 2 dims", "[5]"});

  manual_seed(5);
  init::kaiming_uniform_(w, 0);  // relu gain sqrt(2): bound sqrt(6 / fan_in)
  check_uniform(w, std::sqrt(6.0 / 96), "kaiming a=0");

  Tensor x = Tensor::empty({300, 200});
  init::xavier_uniform_(x, 2);
  check_uniform(x, 2 * std::sqrt(6.0 / 500), "xavier gain 2");

  Tensor n = Tensor::empty({100000});
  init::normal_(n, 2, 3);
  auto [mean, std] = mean_std(n);
  CHECK(mean == doctest::Approx(2).epsilon(0.02));
  CHECK(std == doctest::Approx(3).epsilon(0.02));

  Tensor u = Tensor::empty({50000});
  init::uniform_(u, 1, 3);
  std::vector<float> uv = u.to_vector();
  CHECK(*std::min_element(uv.begin(), uv.end()) >= 1);
  CHECK(*std::max_element(uv.begin(), uv.end()) < 3);
  CHECK(mean_std(u).first == doctest::Approx(2).epsilon(0.01));

  init::zeros_(u);
  CHECK(u.to_vector() == std::vector<float>(50000, 0.0f));
  init::ones_(u);
  CHECK(u.to_vector() == std::vector<float>(50000, 1.0f));
}

TEST_CASE("init: Embedding weights are N(0, 1)") {
  manual_seed(4);
  Embedding emb(1000, 64);
  auto [mean, std] = mean_std(emb.weight);
  CHECK(std::fabs(mean) < 0.02);
  CHECK(std == doctest::Approx(1).epsilon(0.02));
}

TEST_CASE("init: in place on a parameter requiring grad, unrecorded, and reproducible from the seed") {
  manual_seed(9);
  Linear a(10, 6);
  manual_seed(9);
  Linear b(10, 6);
  Linear c(10, 6);  // the stream has moved on
  CHECK(a.weight.to_vector() == b.weight.to_vector());
  CHECK(a.bias.to_vector() == b.bias.to_vector());
  CHECK(a.weight.to_vector() != c.weight.to_vector());

  Tensor handle = a.weight;
  init::xavier_uniform_(a.weight);
  CHECK(handle.same(a.weight));
  CHECK(a.weight.is_leaf());
  CHECK(a.weight.requires_grad());
  CHECK(a.weight.to_vector() != b.weight.to_vector());
}
