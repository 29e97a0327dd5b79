// MMSA's MulT: state-dict names, shapes and trainable counts against MMSA v2.2.1 (MOSI / MOSEI / SIMS
// defaults); forward, projected sequences and grads against a PyTorch twin (tests/golden/make_mult_golden.py,
// checked against MMSA's own modules when written); MMSA's attention mask; the last-step shortcut of the
// self-attention encoders; the defaults; the length-1 configuration error; mixing between encode and fuse;
// a 64-sample overfit with Adam.
#include <algorithm>
#include <cmath>
#include <limits>

#include "models/mult.h"
#include "msmix/optimizer.h"
#include "tests/golden/golden.h"
#include "tests/models/backbone_testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

const char* const kEncoders[] = {"trans_l_with_a", "trans_l_with_v", "trans_a_with_l",
                                 "trans_a_with_v", "trans_v_with_l", "trans_v_with_a",
                                 "trans_l_mem",    "trans_a_mem",    "trans_v_mem"};

Config with_dims(Config c, const std::vector<int64_t>& dims) {
  c["feature_dims"] = dims;
  return c;
}

std::shared_ptr<MULT> at_defaults(const std::string& dataset, const std::vector<int64_t>& dims) {
  Config c = with_dims(mult_defaults(dataset), dims);
  return std::make_shared<MULT>(config_feature_dims(c), c);
}

// MMSA's state_dict keys, written out from its module tree: proj_{l,a,v}.weight; per encoder `version`, layers
// (self_attn with packed in_proj, fc1, fc2, two layer_norms) and the final layer_norm; proj1, proj2, out_layer.
std::vector<std::string> mmsa_keys(int64_t nlevels) {
  std::vector<std::string> out = {"proj_l.weight", "proj_a.weight", "proj_v.weight"};
  for (int e = 0; e < 9; ++e) {
    const std::string enc = kEncoders[e];
    out.push_back(enc + ".version");
    const int64_t layers = e < 6 ? nlevels : std::max<int64_t>(nlevels, 3);
    for (int64_t i = 0; i < layers; ++i)
      for (const char* k : {"self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
                            "self_attn.out_proj.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
                            "layer_norms.0.weight", "layer_norms.0.bias", "layer_norms.1.weight", "layer_norms.1.bias"})
        out.push_back(enc + ".layers." + std::to_string(i) + "." + k);
    out.push_back(enc + ".layer_norm.weight");
    out.push_back(enc + ".layer_norm.bias");
  }
  for (const char* k :
       {"proj1.weight", "proj1.bias", "proj2.weight", "proj2.bias", "out_layer.weight", "out_layer.bias"})
    out.push_back(k);
  return out;
}

// The golden fixture's sizes (see make_mult_golden.py): widths (6, 4, 5), kernels (3, 2, 1), d 4, 2 heads,
// nlevels 1, dropouts 0, attn_mask on.
Config tiny_config() {
  Config c = with_dims(mult_defaults("mosi"), {6, 4, 5});
  apply_overrides(c, {"dst_feature_dim_nheads=[4,2]", "nlevels=1", "conv1d_kernel_size_l=3", "conv1d_kernel_size_a=2",
                      "conv1d_kernel_size_v=1", "text_dropout=0", "attn_dropout=0", "attn_dropout_a=0",
                      "attn_dropout_v=0", "embed_dropout=0", "output_dropout=0"});
  return c;
}

// The fixture's weights: parameter p (named_parameters order), element i = 0.5 sin(1 + 0.731 i + 1.913 p).
void formula_state(Module& m) {
  int64_t p = 0;
  for (auto& [name, t] : m.named_parameters()) {
    std::vector<float> v(size_t(t.numel()));
    for (size_t i = 0; i < v.size(); ++i) v[i] = float(0.5 * std::sin(1.0 + 0.731 * double(i) + 1.913 * double(p)));
    t.copy_(Tensor::from_vector(v, t.shape()));
    ++p;
  }
}

}  // namespace

// ---------------------------------------------------------------- names, shapes, counts (MMSA v2.2.1)

TEST_CASE("mult: state-dict names and shapes equal MMSA's; trainable counts at its defaults") {
  auto net = at_defaults("mosi", {768, 5, 20});
  std::vector<std::string> expect = mmsa_keys(4);
  CHECK(expect.size() == 468);  // MMSA's MULT(mosi).state_dict() has 468 entries
  std::vector<std::string> got;
  for (const auto& [name, t] : net->state_dict()) got.push_back(name);
  std::sort(expect.begin(), expect.end());
  CHECK(got == expect);
  CHECK(net->num_parameters() == 2571551);
  CHECK(net->num_parameters(false) == 2571551);  // the 9 `version` buffers are not parameters
  CHECK(net->named_buffers().size() == 9);

  // parameters() in MMSA's order (what its optimizer and a .pth conversion see).
  NamedTensors params = net->named_parameters();
  CHECK(params[0].first == "proj_l.weight");
  CHECK(params[3].first == "trans_l_with_a.layers.0.self_attn.in_proj_weight");
  CHECK(params.back().first == "out_layer.bias");

  auto state = net->state_dict();
  CHECK(state.at("proj_l.weight").shape() == Shape{50, 768, 5});
  CHECK(state.at("proj_a.weight").shape() == Shape{50, 5, 5});
  CHECK(state.at("proj_v.weight").shape() == Shape{50, 20, 5});
  CHECK(state.at("trans_l_with_a.layers.3.self_attn.in_proj_weight").shape() == Shape{150, 50});
  CHECK(state.at("trans_l_with_a.layers.0.self_attn.out_proj.weight").shape() == Shape{50, 50});
  CHECK(state.at("trans_l_with_a.layers.0.fc1.weight").shape() == Shape{200, 50});
  CHECK(state.at("trans_l_with_a.layers.0.fc2.weight").shape() == Shape{50, 200});
  CHECK(state.at("trans_v_mem.layers.3.self_attn.in_proj_bias").shape() == Shape{300});
  CHECK(state.at("trans_v_mem.layer_norm.weight").shape() == Shape{100});
  CHECK(state.at("trans_a_mem.version").shape() == Shape{1});
  CHECK(state.at("trans_a_mem.version").item() == 2.0f);
  CHECK(state.at("proj1.weight").shape() == Shape{300, 300});
  CHECK(state.at("out_layer.weight").shape() == Shape{1, 300});

  // MOSEI (d 30, 6 heads, kernels 5/1/3) and SIMS (nlevels 2: cross-modal 2 layers, self-attention 3).
  CHECK(at_defaults("mosei", {768, 74, 35})->num_parameters() == 982951);
  auto sims = at_defaults("sims", {768, 33, 709});
  CHECK(sims->num_parameters() == 1870701);
  std::vector<std::string> sims_expect = mmsa_keys(2);
  std::sort(sims_expect.begin(), sims_expect.end());
  got.clear();
  for (const auto& [name, t] : sims->state_dict()) got.push_back(name);
  CHECK(got == sims_expect);
}

TEST_CASE("mult: MMSA's initialisation (xavier-uniform attention and FFN weights, zero biases, LayerNorm 1/0)") {
  manual_seed(3);
  auto net = at_defaults("mosi", {768, 5, 20});
  auto state = net->state_dict();
  auto max_abs = [](const Tensor& t) {
    float m = 0;
    for (float x : t.to_vector()) m = std::max(m, std::fabs(x));
    return m;
  };
  const float bound_in = std::sqrt(6.0f / (50 + 150)), bound_out = std::sqrt(6.0f / 100),
              bound_fc = std::sqrt(6.0f / 250);
  const std::string layer = "trans_a_with_v.layers.1.";
  CHECK(max_abs(state.at(layer + "self_attn.in_proj_weight")) <= bound_in);
  CHECK(max_abs(state.at(layer + "self_attn.in_proj_weight")) > 0.9f * bound_in);
  CHECK(max_abs(state.at(layer + "self_attn.out_proj.weight")) <= bound_out);
  CHECK(max_abs(state.at(layer + "self_attn.out_proj.weight")) > 0.9f * bound_out);  // not PyTorch's 1/sqrt(50)
  CHECK(max_abs(state.at(layer + "fc1.weight")) <= bound_fc);
  CHECK(max_abs(state.at(layer + "fc1.weight")) > 0.9f * bound_fc);
  for (const char* b :
       {"self_attn.in_proj_bias", "self_attn.out_proj.bias", "fc1.bias", "fc2.bias", "layer_norms.0.bias"})
    CHECK(max_abs(state.at(layer + b)) == 0.0f);
  CHECK(state.at(layer + "layer_norms.1.weight").to_vector() == std::vector<float>(50, 1.0f));
  // Conv1d (kaiming, bound 1/sqrt(Cin K)) and nn.Linear defaults for the head.
  CHECK(max_abs(state.at("proj_l.weight")) <= 1.0f / std::sqrt(768.0f * 5));
  CHECK(max_abs(state.at("proj1.bias")) > 0.0f);
}

// ---------------------------------------------------------------- against the PyTorch twin

TEST_CASE("mult: forward, projected sequences and grads match the PyTorch twin (golden)") {
  golden::Fixture fx = golden::load("mult/mult.json");
  Config c = tiny_config();
  CHECK(fx["config.kernels"].to_vector() == std::vector<float>{3, 2, 1});
  MULT net(config_feature_dims(c), c);
  formula_state(net);
  for (const auto& [name, b] : net.named_buffers()) check_close(b, fx["state." + name], 0, 0, "state." + name);
  net.eval();
  ModelInput in;
  in.text = fx["text"], in.audio = fx["audio"], in.vision = fx["vision"];
  for (Tensor* x : {&in.text, &in.audio, &in.vision}) x->set_requires_grad(true);
  Representations z = net.encode(in);
  check_close(z.t, fx["z.t"], 1e-4, 1e-5, "z.t");
  check_close(z.a, fx["z.a"], 1e-4, 1e-5, "z.a");  // audio width = d: the input itself
  check_close(z.v, fx["z.v"], 1e-4, 1e-5, "z.v");
  ModelOutput out = net.fuse(z);
  CHECK(!out.aux_loss.defined());
  check_close(out.prediction, fx["out"], 1e-4, 1e-5, "out");
  out.prediction.backward(fx["w"]);
  check_close(in.text.grad(), fx["grad.text"], 1e-4, 1e-5, "grad.text");
  check_close(in.audio.grad(), fx["grad.audio"], 1e-4, 1e-5, "grad.audio");
  check_close(in.vision.grad(), fx["grad.vision"], 1e-4, 1e-5, "grad.vision");
  int full = 0, summarised = 0;
  for (const auto& [name, p] : net.named_parameters()) {
    CAPTURE(name);
    if (!fx.has("gsum." + name)) {  // only proj_a: MMSA skips it when the width already equals d
      CHECK(name == "proj_a.weight");
      CHECK(!p.grad().defined());
      continue;
    }
    REQUIRE_MESSAGE(p.grad().defined(), "no grad for " << name);
    std::vector<float> g = p.grad().to_vector();
    double s = 0, sq = 0;
    for (float x : g) s += x, sq += double(x) * x;
    const double scale = std::sqrt(sq * double(g.size()));  // bounds |sum| whatever the signs
    CHECK(std::fabs(sq - fx["gsq." + name].item()) <= 1e-4 * sq + 1e-10);
    CHECK(std::fabs(s - fx["gsum." + name].item()) <= 1e-4 * scale + 1e-7);
    ++summarised;
    if (fx.has("grad." + name)) {
      check_close(p.grad(), fx["grad." + name], 1e-4, 1e-5, "grad." + name);
      ++full;
    }
  }
  CHECK(summarised == int(fx.with_prefix("gsum.").size()));
  CHECK(full == int(fx.with_prefix("grad.").size()) - 3);  // every full grad the fixture has, inputs aside
  CHECK(full > 30);
}

// ---------------------------------------------------------------- pieces

TEST_CASE("mult: the attention mask is MMSA's triu(-inf, 1 + |Lk - Lq|), undefined when it masks nothing") {
  for (auto [Lq, Lk] : {std::pair<int64_t, int64_t>{5, 9}, {5, 4}, {4, 4}, {9, 5}, {1, 1}, {3, 1}, {1, 3}, {8, 5}}) {
    CAPTURE(Lq);
    CAPTURE(Lk);
    const int64_t offset = 1 + std::abs(Lk - Lq);
    bool any = false;
    std::vector<float> expect(size_t(Lq * Lk), 0.0f);
    for (int64_t i = 0; i < Lq; ++i)
      for (int64_t j = 0; j < Lk; ++j)
        if (j - i >= offset) expect[size_t(i * Lk + j)] = -std::numeric_limits<float>::infinity(), any = true;
    Tensor m = mult_future_mask(Lq, Lk);
    REQUIRE(m.defined() == any);
    if (any) {
      CHECK(m.shape() == Shape{Lq, Lk});
      CHECK(m.to_vector() == expect);
    }
  }
  CHECK(!mult_future_mask(371, 46).defined());  // MOSI unaligned: 371 audio queries over 46 text keys mask nothing
  CHECK(mult_future_mask(46, 371).defined());   // 46 text queries over 371 audio keys do
  check_throws_with([] { mult_future_mask(0, 3); }, {"mult_future_mask", "positive"});
}

TEST_CASE("mult: last_only gives the last row of the full encoder, with the same grads") {
  manual_seed(11);
  for (bool cross : {false, true}) {
    CAPTURE(cross);
    MultTransformerEncoder enc(8, 2, 3, 0, 0, 0, 0, /*attn_mask=*/true);
    for (auto& [name, p] : enc.named_parameters()) p.copy_(Tensor::randn(p.shape(), 0.0f, 0.4f));
    Tensor x = leaf({2, 6, 8}, 1), src = leaf({2, 9, 8}, 2);
    Tensor w = leaf({2, 1, 8}, 3).detach();
    auto run = [&](bool last_only) {
      x.zero_grad(), src.zero_grad(), enc.zero_grad();
      Tensor y = enc.forward(x, cross ? src : Tensor(), last_only);
      if (!last_only) y = slice(y, 1, 5, 6);
      sum(mul(y, w)).backward();
      std::vector<Tensor> out = {y.detach(), x.grad()};
      if (cross) out.push_back(src.grad());
      for (auto& [name, p] : enc.named_parameters()) out.push_back(p.grad());
      return out;
    };
    std::vector<Tensor> full = run(false), last = run(true);
    CHECK(last[0].shape() == Shape{2, 1, 8});
    check_all_close(last, full, 1e-5, 1e-6);
  }
}

TEST_CASE("mult: defaults are MMSA's config and trainer values; overrides are type-checked") {
  Config mosi = mult_defaults("mosi");
  CHECK(mosi["dst_feature_dim_nheads"] == Config({50, 10}));
  CHECK(mosi["nlevels"] == 4);
  CHECK(mosi["conv1d_kernel_size_a"] == 5);
  CHECK(mosi["batch_size"] == 16);
  CHECK(mosi["learning_rate"].get<double>() == doctest::Approx(2e-3));
  CHECK(mosi["grad_clip"].get<double>() == doctest::Approx(0.6));
  CHECK(mosi["update_epochs"] == 8);
  CHECK(mosi["patience"] == 5);
  CHECK(mosi["attn_mask"] == true);
  CHECK(mosi["weight_decay"].get<double>() == 0.0);  // MMSA's MULT trainer passes none to Adam
  CHECK(mosi["loss"] == "l1");
  Config mosei = mult_defaults("mosei");
  CHECK(mosei["dst_feature_dim_nheads"] == Config({30, 6}));
  CHECK(mosei["batch_size"] == 4);
  CHECK(mosei["conv1d_kernel_size_v"] == 3);
  CHECK(mosei["patience"] == 20);
  Config sims = mult_defaults("sims");
  CHECK(sims["nlevels"] == 2);
  CHECK(sims["res_dropout"].get<double>() == doctest::Approx(0.2));
  Config utt = mult_defaults("mosi-utterance");
  CHECK(utt["conv1d_kernel_size_l"] == 1);
  CHECK(utt["conv1d_kernel_size_a"] == 1);
  CHECK(utt["conv1d_kernel_size_v"] == 1);
  CHECK(utt["feature_dims"] == Config({100, 73, 100}));
  check_throws_with([] { mult_defaults("iemocap"); }, {"mult_defaults", "iemocap", "mosi-utterance"});
  apply_override(mosi, "conv1d_kernel_size_a=1");
  CHECK(mosi["conv1d_kernel_size_a"] == 1);
  check_throws_with([&] { apply_override(mosi, "conv1d_kernel_size_a=1.5"); }, {"conv1d_kernel_size_a", "integer"});
  check_throws_with([&] { apply_override(mosi, "dst_feature_dim_nheads=[50]"); }, {"dst_feature_dim_nheads"});
}

// ---------------------------------------------------------------- errors, length 1, the encode/fuse split

TEST_CASE("mult: a sequence shorter than its kernel is a configuration error; kernel 1 runs length-1 data") {
  manual_seed(4);
  Config c = with_dims(mult_defaults("mosi"), {100, 73, 100});  // MOSI's kernels (5) on utterance widths
  MULT net(config_feature_dims(c), c);
  ModelInput one = random_input(3, {1, 1, 1}, {100, 73, 100}, 7);
  check_throws_with([&] { net.encode(one); },
                    {"MULT", "text", "1 step", "conv1d_kernel_size_l = 5", "conv1d_kernel_size_l=1", "mosi-utterance"});
  ModelInput short_audio = random_input(3, {6, 4, 6}, {100, 73, 100}, 7);
  check_throws_with([&] { net.encode(short_audio); }, {"MULT", "audio", "4 step", "conv1d_kernel_size_a=1"});

  Config u = mult_defaults("mosi-utterance");
  MULT utt(config_feature_dims(u), u);
  utt.eval();
  Representations z = utt.encode(one);
  CHECK(z.t.shape() == Shape{3, 1, 50});
  CHECK(z.a.shape() == Shape{3, 1, 50});
  Tensor y = utt.fuse(z).prediction;
  CHECK(y.shape() == Shape{3, 1});
  CHECK(all_finite(y));
  // The kernel-1 shortcut (a Linear) equals the Conv1d it replaces.
  Tensor conv = transpose(conv1d(transpose(one.audio, 1, 2), utt.proj_a->weight, Tensor(), 0), 1, 2);
  check_close(z.a, conv, 1e-5, 1e-6, "kernel-1 projection");
}

TEST_CASE("mult: bad inputs and configs name MULT, the shapes and the keys") {
  Config c = tiny_config();
  MULT net(config_feature_dims(c), c);
  ModelInput ok = random_input(2, {7, 9, 4}, {6, 4, 5}, 1);
  ModelInput bad = ok;
  bad.audio = Tensor::randn({2, 9, 3});
  check_throws_with([&] { net.encode(bad); }, {"MULT", "audio", "[2, 9, 3]"});
  bad = ok;
  bad.vision = Tensor::randn({3, 4, 5});
  check_throws_with([&] { net.encode(bad); }, {"MULT", "batch", "vision"});
  bad = ok;
  bad.text = Tensor::randn({2, 42});
  check_throws_with([&] { net.encode(bad); }, {"MULT", "text", "[2, 42]"});
  Representations z = net.encode(ok);
  z.v = Tensor::randn({2, 4, 3});
  check_throws_with([&] { net.fuse(z); }, {"MULT", "representation v", "[2, 4, 3]"});
  Config heads = c;
  apply_override(heads, "dst_feature_dim_nheads=[4,3]");
  check_throws_with([&] { MULT(config_feature_dims(heads), heads); }, {"MULT", "dst_feature_dim_nheads", "[4, 3]"});
  Config missing = c;
  missing.erase("nlevels");
  check_throws_with([&] { MULT(config_feature_dims(missing), missing); }, {"nlevels"});
}

TEST_CASE("mult: mixing two batches' projected sequences between encode and fuse gives finite outputs and grads") {
  manual_seed(8);
  Config c = tiny_config();
  apply_overrides(c, {"attn_dropout=0.3", "embed_dropout=0.2", "output_dropout=0.5", "text_dropout=0.5",
                      "res_dropout=0.1", "relu_dropout=0.1"});
  MULT net(config_feature_dims(c), c);
  net.train();
  ModelInput x1 = random_input(4, {7, 9, 4}, {6, 4, 5}, 1), x2 = random_input(4, {7, 9, 4}, {6, 4, 5}, 2);
  Representations z1 = net.encode(x1), z2 = net.encode(x2);
  const float lambda = 0.3f;
  auto mix = [&](const Tensor& a, const Tensor& b) { return add(mul(a, lambda), mul(b, 1 - lambda)); };
  Representations mixed{mix(z1.t, z2.t), mix(z1.a, z2.a), mix(z1.v, z2.v)};
  Tensor y = net.fuse(mixed).prediction;
  CHECK(y.shape() == Shape{4, 1});
  CHECK(all_finite(y));
  sum(y).backward();
  int with_grad = 0;
  for (const auto& [name, p] : net.named_parameters()) {
    if (!p.grad().defined()) continue;
    CHECK_MESSAGE(all_finite(p.grad()), name);
    ++with_grad;
  }
  CHECK(with_grad == int(net.named_parameters().size()) - 1);  // all but proj_a (audio width = d)
  // Dropout acts in training and not in eval; eval is deterministic.
  net.eval();
  Tensor e1 = net.forward(x1).prediction, e2 = net.forward(x1).prediction;
  CHECK(e1.to_vector() == e2.to_vector());
  net.train();
  Tensor t1 = net.forward(x1).prediction;
  CHECK(t1.to_vector() != e1.to_vector());
}

TEST_CASE("mult: overfits 64 synthetic samples (L1 falls 10x with Adam)") {
  const int64_t N = 64;
  manual_seed(5);
  Config c = with_dims(mult_defaults("mosi"), {6, 4, 5});
  apply_overrides(c, {"dst_feature_dim_nheads=[8,2]", "nlevels=1", "conv1d_kernel_size_l=3", "conv1d_kernel_size_a=3",
                      "conv1d_kernel_size_v=1", "text_dropout=0", "attn_dropout=0", "attn_dropout_a=0",
                      "embed_dropout=0", "output_dropout=0"});
  MULT net(config_feature_dims(c), c);
  ModelInput in = random_input(N, {6, 8, 5}, {6, 4, 5}, 21);
  AdamOptions o;
  o.lr = 5e-3f;
  Adam opt(net.parameters(), o);
  auto [first, last] =
      overfit(net, in, overfit_labels(in), opt, 50, [](const Tensor& p, const Tensor& y) { return l1_loss(p, y); });
  MESSAGE("MulT overfit: L1 " << first << " -> " << last);
  CHECK(last < first / 10);
}
