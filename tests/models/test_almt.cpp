// ALMT: state-dict names, shapes and counts (MMSA v2.2.1's, BERT aside, against shared/spec/almt.md's
// 2,603,649 on MOSI); forward, representations and grads against a PyTorch twin
// (tests/golden/make_almt_golden.py); the cut of the embedding's last layer to the kept tokens; the defaults and
// the per-epoch warmup + cosine schedule; errors; mixing between encode and fuse; a small overfit with AdamW.
#include <algorithm>
#include <cmath>

#include "models/almt.h"
#include "models/registry.h"
#include "msmix/lr_scheduler.h"
#include "msmix/optimizer.h"
#include "tests/golden/golden.h"
#include "tests/models/backbone_testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

std::shared_ptr<ALMT> at_defaults(const std::string& dataset, const std::vector<int64_t>& dims) {
  Config c = almt_defaults(dataset);
  c["feature_dims"] = dims;
  return std::make_shared<ALMT>(config_feature_dims(c), c);
}

// The golden fixture's sizes (make_almt_golden.py): widths (6, 4, 5), tables for (5, 7, 3) steps, d 8, 2 tokens,
// 2 heads everywhere, embedding depths (1, 2, 1), AHL_depth 3, fusion depth 2, hidden widths 8.
Config tiny_config() {
  Config c = almt_defaults("mosi");
  c["feature_dims"] = {6, 4, 5};
  apply_overrides(c, {"feature_length=[5,7,3]", "dst_feature_dims=8", "dst_embedding_length=2",
                      "dst_feature_hidden_dims=8", "embedding_depth=[1,2,1]", "embedding_heads=[2,2,2]",
                      "l_encoder_heads=2", "h_hyper_layer_heads=2", "fusion_heads=2", "fusion_hidden_d=8"});
  return c;
}

}  // namespace

// ---------------------------------------------------------------- names, shapes, counts

TEST_CASE("almt: MMSA's state-dict names and shapes; 2,603,649 parameters on MOSI (the spec's count without BERT)") {
  auto net = at_defaults("mosi", {768, 5, 20});
  CHECK(net->num_parameters() == 2603649);
  CHECK(net->named_buffers().empty());
  NamedTensors params = net->named_parameters();
  CHECK(params.front().first == "h_hyper");  // MMSA registers it first
  CHECK(params[1].first == "embedding_l.0.weight");
  CHECK(params[3].first == "embedding_l.1.pos_embedding");
  CHECK(params[4].first == "embedding_l.1.extra_token");
  CHECK(params.back().first == "regression_head.bias");

  auto state = net->state_dict();
  CHECK(state.size() == params.size());
  CHECK(state.at("h_hyper").shape() == Shape{1, 8, 128});
  CHECK(state.at("h_hyper").to_vector() == std::vector<float>(8 * 128, 1.0f));
  CHECK(state.at("embedding_l.0.weight").shape() == Shape{128, 768});
  CHECK(state.at("embedding_a.0.weight").shape() == Shape{128, 5});
  CHECK(state.at("embedding_v.1.pos_embedding").shape() == Shape{1, 508, 128});
  CHECK(state.at("embedding_a.1.pos_embedding").shape() == Shape{1, 383, 128});
  CHECK(state.at("embedding_l.1.extra_token").to_vector() == std::vector<float>(8 * 128, 0.0f));
  const std::string layer = "embedding_v.1.encoder.layers.0.";
  for (const char* n : {"0.norm_q.weight", "0.norm_k.bias", "0.norm_v.weight", "1.norm.weight"})
    CHECK(state.at(layer + n).shape() == Shape{128});
  CHECK(state.at(layer + "0.fn.to_q.weight").shape() == Shape{512, 128});  // 8 heads of 64
  CHECK(state.count(layer + "0.fn.to_q.bias") == 0);
  CHECK(state.at(layer + "0.fn.to_out.0.weight").shape() == Shape{128, 512});
  CHECK(state.at(layer + "0.fn.to_out.0.bias").shape() == Shape{128});
  CHECK(state.at(layer + "1.fn.net.0.weight").shape() == Shape{128, 128});
  CHECK(state.at(layer + "1.fn.net.3.bias").shape() == Shape{128});
  CHECK(state.count("embedding_v.1.encoder.layers.1.0.norm_q.weight") == 0);  // embedding depth 1
  CHECK(state.at("l_encoder.pos_embedding").shape() == Shape{1, 8, 128});
  CHECK(state.count("l_encoder.extra_token") == 0);
  CHECK(state.count("l_encoder.encoder.layers.1.1.norm.weight") == 1);  // AHL_depth - 1 = 2 layers
  CHECK(state.count("l_encoder.encoder.layers.2.1.norm.weight") == 0);
  CHECK(state.at("h_hyper_layer.layers.2.0.norm4.weight").shape() == Shape{128});
  CHECK(state.at("h_hyper_layer.layers.0.0.fn.to_k_tv.weight").shape() == Shape{128, 128});  // 8 heads of 16
  CHECK(state.at("h_hyper_layer.layers.0.0.fn.to_out.0.bias").shape() == Shape{128});
  CHECK(state.at("fusion_layer.pos_embedding_s").shape() == Shape{1, 9, 128});
  CHECK(state.at("fusion_layer.extra_token").shape() == Shape{1, 1, 128});
  CHECK(state.count("fusion_layer.CrossTransformerEncoder.layers.1.1.fn.net.3.weight") == 1);
  CHECK(state.at("regression_head.weight").shape() == Shape{1, 128});
  // MOSEI: audio 74 wide over 500 steps, vision 35, fusion depth 4 (two more layers of 296,320).
  CHECK(at_defaults("mosei", {768, 74, 35})->num_parameters() == 3223041);
  // Through the registry and the defaults table.
  Config c = backbone_defaults("almt", "mosi");
  CHECK(make_backbone("almt", config_feature_dims(c), c)->num_parameters() == 2603649);
}

// ---------------------------------------------------------------- against the PyTorch twin

TEST_CASE("almt: forward, the mixed representations and grads match the PyTorch twin (golden)") {
  golden::Fixture fx = golden::load("almt/almt.json");
  Config c = tiny_config();
  ALMT net(config_feature_dims(c), c);
  REQUIRE(net.num_parameters() == 36321);  // the twin's count
  fill_formula_weights(net);
  ModelInput in = fixture_input(fx);
  Representations z = net.encode(in);
  check_scaled(z.t, fx["z.t"], "z.t");
  check_scaled(z.a, fx["z.a"], "z.a");
  check_scaled(z.v, fx["z.v"], "z.v");
  ModelOutput out = net.fuse(z);
  CHECK(!out.aux_loss.defined());
  check_scaled(out.prediction, fx["out"], "out");
  out.prediction.backward(fx["w"]);
  check_scaled(in.text.grad(), fx["grad.text"], "grad.text");
  check_scaled(in.audio.grad(), fx["grad.audio"], "grad.audio");
  check_scaled(in.vision.grad(), fx["grad.vision"], "grad.vision");
  auto key_bias = [](const std::string& name) {
    return name.size() > 11 && name.compare(name.size() - 11, 11, "norm_k.bias") == 0;
  };
  CHECK(check_parameter_grads(net, fx, key_bias) > 40);
}

// ---------------------------------------------------------------- pieces

TEST_CASE("almt: keeping the first tokens cuts the last layer's queries, with the same outputs and grads") {
  manual_seed(11);
  for (int64_t depth : {1, 3}) {
    CAPTURE(depth);
    AlmtTransformer tr(/*frames=*/9, /*tokens=*/3, /*dim=*/8, depth, /*heads=*/2, /*mlp_dim=*/6, /*dim_head=*/4);
    for (auto& [name, p] : tr.named_parameters()) p.copy_(Tensor::randn(p.shape(), 0.0f, 0.4f));
    Tensor x = leaf({2, 7, 8}, 1);
    Tensor w = leaf({2, 3, 8}, 3).detach();
    auto run = [&](bool cut) {
      x.zero_grad(), tr.zero_grad();
      Tensor y = cut ? tr.forward(x, 3) : slice(tr.forward_hidden(x).back(), 1, 0, 3);
      sum(mul(y, w)).backward();
      std::vector<Tensor> out = {y.detach(), x.grad()};
      for (auto& [name, p] : tr.named_parameters()) out.push_back(p.grad());
      return out;
    };
    std::vector<Tensor> full = run(false), cut = run(true);
    CHECK(cut[0].shape() == Shape{2, 3, 8});
    check_all_close(cut, full, 1e-5, 1e-6);
  }
}

TEST_CASE("almt: defaults are the spec's; the per-epoch warmup + cosine schedule is ALMT's") {
  Config mosi = almt_defaults("mosi");
  CHECK(mosi["feature_length"] == Config({50, 375, 500}));
  CHECK(mosi["fusion_layer_depth"] == 2);
  CHECK(mosi["AHL_depth"] == 3);
  CHECK(mosi["dst_embedding_length"] == 8);
  CHECK(mosi["loss"] == "mse");
  CHECK(mosi["optimizer"] == "adamw");
  CHECK(mosi["learning_rate"].get<double>() == doctest::Approx(1e-4));
  CHECK(mosi["weight_decay"].get<double>() == doctest::Approx(1e-4));
  CHECK(mosi["batch_size"] == 64);
  CHECK(mosi["early_stop"] == 32);
  CHECK(mosi["max_epochs"] == 200);
  CHECK(mosi["use_bert"] == false);
  CHECK(almt_defaults("mosei")["feature_length"] == Config({50, 500, 500}));
  CHECK(almt_defaults("mosei")["fusion_layer_depth"] == 4);
  CHECK(almt_defaults("sims")["feature_length"] == Config({39, 400, 55}));
  Config utt = backbone_defaults("almt", "mosi-utterance");
  CHECK(utt["feature_length"] == Config({1, 1, 1}));
  CHECK(utt["feature_dims"] == Config({100, 73, 100}));
  check_throws_with([] { almt_defaults("iemocap"); }, {"almt_defaults", "iemocap", "mosi-utterance"});

  // Epoch 1 at 0, epochs 2..21 at (e - 1) / 20, then (1 + cos(pi (e - 21) / 180)) / 2.
  const int64_t W = config_int(mosi, "warmup_epochs"), T = config_int(mosi, "cosine_epochs");
  CHECK(EpochSchedule::warmup_cosine(1, W, T) == 0.0);
  CHECK(EpochSchedule::warmup_cosine(2, W, T) == doctest::Approx(0.05));
  CHECK(EpochSchedule::warmup_cosine(21, W, T) == doctest::Approx(1.0));
  CHECK(EpochSchedule::warmup_cosine(22, W, T) == doctest::Approx(0.5 * (1 + std::cos(M_PI / 180))));
  CHECK(EpochSchedule::warmup_cosine(111, W, T) == doctest::Approx(0.5));
  CHECK(EpochSchedule::warmup_cosine(200, W, T) == doctest::Approx(0.5 * (1 + std::cos(M_PI * 179 / 180))));
  CHECK(EpochSchedule::warmup_cosine(5, 0, 10) == doctest::Approx(0.5 * (1 + std::cos(M_PI * 4 / 10))));
  Tensor p1 = Tensor::zeros({2}), p2 = Tensor::zeros({3});
  p1.set_requires_grad(true);
  p2.set_requires_grad(true);
  AdamOptions o;
  o.lr = 1e-4f;
  AdamW opt({{{p1}}, {{p2}, 3e-4f}}, o);
  EpochSchedule schedule(opt, [=](int64_t e) { return EpochSchedule::warmup_cosine(e, W, T); });
  schedule.start_epoch(1);
  CHECK(opt.lr(0) == 0.0f);
  schedule.start_epoch(11);
  CHECK(opt.lr(0) == doctest::Approx(0.5e-4));
  CHECK(opt.lr(1) == doctest::Approx(1.5e-4));
  schedule.start_epoch(21);  // a function of the epoch alone: no state carried over
  CHECK(opt.lr(1) == doctest::Approx(3e-4));
  check_throws_with([&] { schedule.start_epoch(0); }, {"warmup_cosine_epochs", "from 1"});
  check_throws_with([&] { EpochSchedule::warmup_cosine(3, 2, 0); }, {"warmup_cosine_epochs", "cosine_epochs"});
  // GLoMo's: x gamma after each milestone epoch (PyTorch's MultiStepLR stepped per epoch).
  CHECK(EpochSchedule::multistep(80, {80, 100}, 0.1) == 1.0);
  CHECK(EpochSchedule::multistep(81, {80, 100}, 0.1) == doctest::Approx(0.1));
  CHECK(EpochSchedule::multistep(101, {80, 100}, 0.1) == doctest::Approx(0.01));
}

// ---------------------------------------------------------------- errors, length 1, the encode/fuse split

TEST_CASE("almt: bad inputs and configs name ALMT, the shapes and the keys") {
  Config c = tiny_config();
  ALMT net(config_feature_dims(c), c);
  ModelInput ok = random_input(2, {5, 7, 3}, {6, 4, 5}, 1);
  CHECK(net.forward(ok).prediction.shape() == Shape{2, 1});
  ModelInput bad = ok;
  bad.audio = Tensor::randn({2, 8, 4});  // longer than its table (7)
  check_throws_with([&] { net.encode(bad); }, {"ALMT", "audio", "8 steps", "feature_length"});
  bad = ok;
  bad.vision = Tensor::randn({2, 3, 6});
  check_throws_with([&] { net.encode(bad); }, {"ALMT", "vision", "[2, 3, 6]"});
  bad = ok;
  bad.text = Tensor::randn({3, 5, 6});
  check_throws_with([&] { net.encode(bad); }, {"ALMT", "batch", "text"});
  bad = ok;
  bad.text = Tensor::randn({2, 3, 30});  // what text_bert [B, 3, L] would look like
  check_throws_with([&] { net.encode(bad); }, {"ALMT", "text", "[2, 3, 30]"});
  Representations z = net.encode(ok);
  z.a = Tensor::randn({2, 3, 8});
  check_throws_with([&] { net.fuse(z); }, {"ALMT", "representation a", "[2, 2, 8]", "[2, 3, 8]"});

  Config bert = c;
  bert["use_bert"] = true;
  check_throws_with([&] { ALMT(config_feature_dims(bert), bert); },
                    {"ALMT", "use_bert", "BERT's hidden width 768", "6"});
  Config heads = c;
  apply_override(heads, "h_hyper_layer_heads=3");
  check_throws_with([&] { ALMT(config_feature_dims(heads), heads); }, {"ALMT", "h_hyper_layer_heads 3", "divide"});
  Config depth = c;
  apply_override(depth, "AHL_depth=0");
  check_throws_with([&] { ALMT(config_feature_dims(depth), depth); }, {"ALMT", "AHL_depth"});
  Config lengths = c;
  apply_override(lengths, "feature_length=[5,0,3]");
  check_throws_with([&] { ALMT(config_feature_dims(lengths), lengths); }, {"ALMT", "feature_length", "[5, 0, 3]"});
  Config missing = c;
  missing.erase("fusion_layer_depth");
  check_throws_with([&] { ALMT(config_feature_dims(missing), missing); }, {"fusion_layer_depth"});
}

TEST_CASE("almt: utterance-level data (one step per modality) runs; mixing between encode and fuse has grads") {
  manual_seed(8);
  Config u = backbone_defaults("almt", "mosi-utterance");
  apply_overrides(u, {"dst_feature_dims=16", "dst_feature_hidden_dims=16", "fusion_hidden_d=16"});
  ALMT net(config_feature_dims(u), u);
  ModelInput x1 = random_input(4, {1, 1, 1}, {100, 73, 100}, 1), x2 = random_input(4, {1, 1, 1}, {100, 73, 100}, 2);
  Representations z1 = net.encode(x1), z2 = net.encode(x2);
  CHECK(z1.t.shape() == Shape{4, 8, 16});
  const float lambda = 0.3f;
  auto mix = [&](const Tensor& a, const Tensor& b) { return add(mul(a, lambda), mul(b, 1 - lambda)); };
  Representations mixed{mix(z1.t, z2.t), mix(z1.a, z2.a), mix(z1.v, z2.v)};
  Tensor y = net.fuse(mixed).prediction;
  CHECK(y.shape() == Shape{4, 1});
  CHECK(all_finite(y));
  sum(y).backward();
  for (const auto& [name, p] : net.named_parameters()) {
    CAPTURE(name);
    REQUIRE(p.grad().defined());
    CHECK(all_finite(p.grad()));
  }
  // A batch of originals and mixed samples together gives each half what it gives alone (no batch coupling).
  NoGradGuard no_grad;
  Tensor both = net.fuse({concat({z1.t, mixed.t}, 0), concat({z1.a, mixed.a}, 0), concat({z1.v, mixed.v}, 0)})
                    .prediction;
  check_close(slice(both, 0, 0, 4), net.fuse(z1).prediction, 1e-5, 1e-6, "originals");
  check_close(slice(both, 0, 4, 8), y.detach(), 1e-5, 1e-6, "mixed");
}

TEST_CASE("almt: overfits 64 synthetic samples (MSE falls 10x with AdamW)") {
  const int64_t N = 64;
  manual_seed(5);
  Config c = tiny_config();
  apply_overrides(c, {"dst_feature_dims=16", "dst_feature_hidden_dims=16", "fusion_hidden_d=16"});
  ALMT net(config_feature_dims(c), c);
  ModelInput in = random_input(N, {5, 6, 3}, {6, 4, 5}, 21);
  AdamOptions o;
  o.lr = 3e-3f;
  o.weight_decay = 1e-4f;
  AdamW opt(net.parameters(), o);
  auto [first, last] =
      overfit(net, in, overfit_labels(in), opt, 80, [](const Tensor& p, const Tensor& y) { return mse_loss(p, y); });
  MESSAGE("ALMT overfit: MSE " << first << " -> " << last);
  CHECK(last < first / 10);
}
