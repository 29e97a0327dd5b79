// GLoMo: its parameter count (the spec's 927,239 on MOSI's GLoMo widths; with BERT 109,818,887); forward,
// representations, the experts' loss and grads against a PyTorch twin (tests/golden/make_glomo_golden.py); the
// noisy top-2 gate in training with given noise; the sinusoidal positions; the adaptive max pool; defaults
// and parameter groups; errors; mixing the global and local vectors; a small overfit.
#include <cmath>

#include "models/glomo.h"
#include "models/registry.h"
#include "msmix/mixing.h"
#include "msmix/optimizer.h"
#include "tests/golden/golden.h"
#include "tests/models/backbone_testing.h"
#include "tests/msmix/tiny_runs.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

// make_glomo_golden.py's sizes: widths (6, 4, 5), d 8, 2 heads, 1 encoder layer, fusion FFN 16, dropouts 0.
Config tiny_config() {
  Config c = glomo_defaults("mosi");
  c["feature_dims"] = {6, 4, 5};
  apply_overrides(c, {"d_model=8", "num_heads=2", "encoder_layers=1", "fusion_ff=16", "attn_dropout=0",
                      "relu_dropout=0", "res_dropout=0", "embed_dropout=0", "fusion_dropout=0", "gate_dropout=0"});
  return c;
}

}  // namespace

TEST_CASE("glomo: 927,239 parameters at MOSI's GLoMo widths (the spec's count), 109,818,887 with its BERT") {
  Config c = glomo_defaults("mosi");
  c["feature_dims"] = {768, 74, 47};
  CHECK(GLoMo(config_feature_dims(c), c).num_parameters() == 927239);
  // With BERT (no pooler): 927,239 + bert-base's 109,482,240 - its pooler's 590,592 = 109,818,887, the spec's
  // count; built here with a small BERT (test_bert.cpp builds bert-base once).
  Config tiny_bert = c;
  apply_overrides(tiny_bert, {"use_bert=true", "bert_vocab=20", "bert_hidden=8", "bert_layers=2", "bert_heads=2",
                              "bert_intermediate=12", "bert_max_positions=10", "bert_dropout=0"});
  tiny_bert["feature_dims"] = {8, 74, 47};
  Config same_width = c;
  same_width["feature_dims"] = {8, 74, 47};
  GLoMo with_bert(config_feature_dims(tiny_bert), tiny_bert);
  REQUIRE(with_bert.bert() != nullptr);
  CHECK(with_bert.bert()->pooler == nullptr);
  CHECK(with_bert.bert()->num_parameters() == 1336);  // test_bert.cpp's tiny BERT (1,408) without its pooler (72)
  CHECK(with_bert.num_parameters() == GLoMo(config_feature_dims(same_width), same_width).num_parameters() + 1336);
  CHECK(with_bert.named_parameters()[0].first == "bert.model.embeddings.word_embeddings.weight");
  // It reads text_bert: g_t from the last layer's [CLS] state, the local branch over the last two layers.
  with_bert.eval();
  Tensor text_bert = Tensor::zeros({2, 3, 6});
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 6 - 2 * b; ++t)
      text_bert.data()[b * 18 + t] = float(1 + 3 * t + b), text_bert.data()[b * 18 + 6 + t] = 1;
  ModelInput in;
  in.text = text_bert, in.audio = Tensor::randn({2, 6, 74}), in.vision = Tensor::randn({2, 6, 47});
  NoGradGuard no_grad;
  Representations z = with_bert.encode(in);
  Tensor h12 = with_bert.bert()->forward(text_bert);
  check_close(z.t, with_bert.text_global->forward(reshape(slice(h12, 1, 0, 1), {2, 8})), 1e-6, 1e-7, "g_t");
  CHECK(z.t_fine.shape() == Shape{2, 48});
  check_throws_with([&] { with_bert.encode(random_input(2, {6, 6, 6}, {8, 74, 47}, 1)); },
                    {"GLoMo (use_bert)", "text_bert [B, 3, L]", "[2, 6, 8]"});
  // Through the registry: MMSA's MOSI widths (768, 5, 20).
  Config m = backbone_defaults("glomo", "mosi");
  CHECK(make_backbone("glomo", config_feature_dims(m), m)->num_parameters() == 913415);
  // GLoMo's weight decay: none on biases and LayerNorm weights (its name rule, on the same names).
  auto groups = parameter_groups(*make_backbone("glomo", config_feature_dims(tiny_bert), tiny_bert), tiny_bert);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].name == "decay");
  CHECK(groups[1].weight_decay == 0.0f);
  auto in_group = [&](size_t g, const std::string& name) {
    for (const auto& [n, p] : groups[g].params)
      if (n == name) return true;
    return false;
  };
  CHECK(in_group(0, "bert.model.encoder.layer.0.attention.self.query.weight"));
  CHECK(in_group(1, "bert.model.encoder.layer.0.attention.self.query.bias"));
  CHECK(in_group(1, "bert.model.embeddings.LayerNorm.weight"));
  CHECK(in_group(0, "audio_encoder.layers.0.layer_norms.0.weight"));  // MulT-style names: decayed, as GLoMo's
  CHECK(in_group(0, "moe_t.w_gate"));
  CHECK(in_group(1, "head.bias"));
}

TEST_CASE("glomo: forward, global and local vectors, the experts' loss and grads match the PyTorch twin (golden)") {
  golden::Fixture fx = golden::load("glomo/glomo.json");
  Config c = tiny_config();
  GLoMo net(config_feature_dims(c), c);
  REQUIRE(net.num_parameters() == 7287);  // the twin's count
  fill_formula_weights(net);
  net.eval();
  ModelInput in = fixture_input(fx);
  Representations z = net.encode(in);
  check_scaled(z.t, fx["z.t"], "z.t");
  check_scaled(z.a, fx["z.a"], "z.a");
  check_scaled(z.v, fx["z.v"], "z.v");
  check_scaled(z.t_fine, fx["z.t_fine"], "z.t_fine");
  check_scaled(z.a_fine, fx["z.a_fine"], "z.a_fine");
  check_scaled(z.v_fine, fx["z.v_fine"], "z.v_fine");
  check_scaled(reshape(z.aux_loss, {1}), fx["aux"], "aux");
  ModelOutput out = net.fuse(z);
  check_scaled(out.prediction, fx["out"], "out");
  REQUIRE(out.aux_loss.defined());
  add(sum(mul(out.prediction, fx["w"])), out.aux_loss).backward();
  check_scaled(in.text.grad(), fx["grad.text"], "grad.text");
  check_scaled(in.audio.grad(), fx["grad.audio"], "grad.audio");
  check_scaled(in.vision.grad(), fx["grad.vision"], "grad.vision");
  // The gates' w_noise acts in training only: the twin has no grad for it, nor do we (checked by the helper).
  CHECK(check_parameter_grads(net, fx, [](const std::string&) { return false; }) > 20);
}

TEST_CASE("glomo moe: the noisy top-2 gate in training, its load through the normal CDF, and grads (golden)") {
  golden::Fixture fx = golden::load("glomo/moe.json");
  GlomoMoE moe(24, 8, 3, 2, 0.01f);
  fill_formula_weights(moe);
  moe.train();
  Tensor x = fx["x"];
  x.set_requires_grad(true);
  GlomoMoE::Output o = moe.forward(x, fx["noise"]);
  check_scaled(o.gates, fx["gates"], "gates");
  check_scaled(o.out, fx["out"], "out");
  check_scaled(reshape(o.loss, {1}), fx["loss"], "loss");
  std::vector<float> gates = o.gates.to_vector();
  for (int64_t b = 0; b < 5; ++b) {  // two experts per row, summing to 1
    int picked = 0;
    float total = 0;
    for (int64_t e = 0; e < 3; ++e) picked += gates[size_t(b * 3 + e)] > 0, total += gates[size_t(b * 3 + e)];
    CHECK(picked == 2);
    CHECK(total == doctest::Approx(1.0f));
  }
  add(sum(mul(o.out, fx["w"])), o.loss).backward();
  check_scaled(x.grad(), fx["grad.x"], "grad.x");
  for (const auto& [name, p] : moe.named_parameters()) {
    CAPTURE(name);
    REQUIRE(p.grad().defined());
    check_scaled(p.grad(), fx["grad." + name], "grad." + name);
  }
  check_throws_with([&] { moe.forward(x, Tensor::zeros({5, 2})); }, {"MoE", "noise", "[5, 3]"});
  check_throws_with([&] { moe.forward(Tensor::zeros({5, 23})); }, {"MoE", "[B, 24]"});
  check_throws_with([] { GlomoMoE(24, 8, 3, 4, 0.01f); }, {"MoE", "k <= experts"});
  CHECK(squared_coefficient_of_variation(Tensor::full({1}, 3.0f)).item() == 0.0f);
  // Fresh noise each call in training (the default generator), none in eval.
  Tensor x2 = Tensor::randn({4, 24});
  CHECK(moe.forward(x2).gates.to_vector() != moe.forward(x2).gates.to_vector());
  moe.eval();
  CHECK(moe.forward(x2).gates.to_vector() == moe.forward(x2).gates.to_vector());
}

TEST_CASE("glomo pieces: sinusoidal positions (none on zero steps) and the adaptive max pool's slots") {
  Tensor x = Tensor::randn({2, 5, 6});
  float* p = x.data();
  p[(1 * 5 + 3) * 6] = 0;  // sample 1, step 3: first channel 0
  std::vector<float> pe = sinusoidal_positions(x).to_vector();
  const double step = std::log(10000.0) / 2;  // h = 3: frequencies exp(-j ln(1e4) / 2)
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 5; ++t)
      for (int64_t j = 0; j < 3; ++j) {
        const bool on = !(b == 1 && t == 3);
        const double angle = double(t + 1) * std::exp(-double(j) * step);
        CHECK(pe[size_t((b * 5 + t) * 6 + j)] == doctest::Approx(on ? std::sin(angle) : 0.0).epsilon(1e-5));
        CHECK(pe[size_t((b * 5 + t) * 6 + 3 + j)] == doctest::Approx(on ? std::cos(angle) : 0.0).epsilon(1e-5));
      }
  check_throws_with([] { sinusoidal_positions(Tensor::zeros({1, 2, 3})); }, {"sinusoidal_positions", "E >= 4"});

  // Slots over 7 steps: [0, 3), [2, 5), [4, 7) (PyTorch's AdaptiveMaxPool1d bins overlap when 3 does not divide L).
  std::vector<float> v(7);
  for (int t = 0; t < 7; ++t) v[size_t(t)] = float((t * 5) % 7);  // 0 5 3 1 6 4 2
  Tensor pooled = adaptive_max_pool_time(Tensor::from_vector(v, {1, 7, 1}), 3);
  CHECK(pooled.shape() == Shape{1, 1, 3});
  CHECK(pooled.to_vector() == std::vector<float>{5, 6, 6});
  CHECK(adaptive_max_pool_time(Tensor::from_vector({2.0f}, {1, 1, 1}), 3).to_vector() ==
        std::vector<float>{2, 2, 2});  // one step fills every slot (utterance-level data)
}

TEST_CASE("glomo: defaults, errors, and mixing global and local vectors with the same pairs and ratios") {
  Config mosi = glomo_defaults("mosi"), mosei = glomo_defaults("mosei");
  CHECK(mosi["d_model"] == 48);
  CHECK(mosi["encoder_layers"] == 4);
  CHECK(mosi["batch_size"] == 240);
  CHECK(mosi["max_epochs"] == 70);
  CHECK(mosi["early_stop"] == 70);  // selection on valid over fixed epochs
  CHECK(mosi["learning_rate"].get<double>() == doctest::Approx(4e-5));
  CHECK(mosi["milestones"] == Config({80, 100}));
  CHECK(mosi["loss"] == "l1");
  CHECK(mosei["d_model"] == 192);
  CHECK(mosei["encoder_layers"] == 3);
  CHECK(mosei["batch_size"] == 64);
  CHECK(mosei["learning_rate"].get<double>() == doctest::Approx(1e-5));
  check_throws_with([] { glomo_defaults("iemocap"); }, {"glomo_defaults", "iemocap"});

  Config c = tiny_config();
  GLoMo net(config_feature_dims(c), c);
  ModelInput ok = random_input(2, {6, 6, 6}, {6, 4, 5}, 1);
  ModelInput bad = ok;
  bad.vision = Tensor::randn({2, 6, 4});
  check_throws_with([&] { net.encode(bad); }, {"GLoMo", "vision", "[2, 6, 4]"});
  bad = ok;
  bad.text = Tensor::randn({3, 6, 6});
  check_throws_with([&] { net.encode(bad); }, {"GLoMo", "text", "[3, 6, 6]"});
  Representations z = net.encode(ok);
  z.a_fine = Tensor();
  check_throws_with([&] { net.fuse(z); }, {"GLoMo", "a_fine", "undefined"});
  Config heads = c;
  apply_override(heads, "num_heads=3");
  check_throws_with([&] { GLoMo(config_feature_dims(heads), heads); }, {"GLoMo", "num_heads 3"});
  Config bert = c;
  bert["use_bert"] = true;
  check_throws_with([&] { GLoMo(config_feature_dims(bert), bert); }, {"GLoMo", "BERT's hidden width 768", "6"});

  // MS-Mix on GLoMo: the global vectors drive it; the local ones follow with the same pairs and ratios.
  manual_seed(3);
  net.train();
  Representations reps = net.encode(random_input(6, {6, 6, 6}, {6, 4, 5}, 2));
  REQUIRE(reps.aux_loss.defined());
  MixConfig mc;
  auto mixer = make_mixer(mc, 8, 8, 8);
  Tensor labels = Tensor::from_vector({-2.0f, -1.0f, 0.0f, 0.5f, 1.5f, 2.5f}, {6});
  Generator gen(5);
  MixResult r = mixer->mix(reps, labels, gen);
  REQUIRE(r.active);
  REQUIRE(r.mixed.t_fine.defined());
  const std::vector<float> li = r.lambda_a.to_vector();
  const std::vector<float> a_fine = reps.a_fine.detach().to_vector(), mixed = r.mixed.a_fine.detach().to_vector();
  const std::vector<float> ii = r.index_i.to_vector(), jj = r.index_j.to_vector();
  for (int64_t k = 0; k < 6; ++k)
    for (int64_t e = 0; e < 8; ++e) {
      const float expect = li[size_t(k)] * a_fine[size_t(ii[size_t(k)] * 8 + e)] +
                           (1 - li[size_t(k)]) * a_fine[size_t(jj[size_t(k)] * 8 + e)];
      CHECK(mixed[size_t(k * 8 + e)] == doctest::Approx(expect).epsilon(1e-5));
    }
  Representations both = concat_batches(reps, r.mixed);
  CHECK(both.t_fine.size(0) == 12);
  ModelOutput out = net.fuse(both);
  CHECK(out.prediction.shape() == Shape{12, 1});
  CHECK(out.aux_loss.same(reps.aux_loss));  // counted once, for the originals
}

TEST_CASE("glomo: overfits 64 synthetic samples (L1 falls 5x with AdamW)") {
  const int64_t N = 64;
  manual_seed(5);
  Config c = tiny_config();
  apply_overrides(c, {"d_model=16", "fusion_ff=32"});
  GLoMo net(config_feature_dims(c), c);
  ModelInput in = random_input(N, {6, 6, 6}, {6, 4, 5}, 21);
  AdamOptions o;
  o.lr = 3e-3f;
  AdamW opt(net.parameters(), o);
  auto [first, last] =  // the experts' loss joins the L1, as in training
      overfit(net, in, overfit_labels(in), opt, 120, [](const Tensor& p, const Tensor& y) { return l1_loss(p, y); });
  MESSAGE("GLoMo overfit: L1 " << first << " -> " << last);
  CHECK(last < first / 5);
}

TEST_CASE("glomo: the trainer refuses unaligned data (need_data_aligned) unless told otherwise") {
  RunSpec spec;
  spec.model = "glomo";
  spec.data = "synthetic:mosi";  // unaligned: 50 text, 375 audio, 500 vision steps
  spec.max_epochs = 1;
  spec.overrides = {"d_model=16", "num_heads=4", "encoder_layers=1", "fusion_ff=16", "synthetic_scale=0.125"};
  Run unaligned = prepared_run(spec);
  check_throws_with([&] { Trainer(unaligned.config, unaligned.data); },
                    {"glomo", "word-aligned", "50 text, 375 audio and 500 vision steps", "need_data_aligned=false"});
  unaligned.config["need_data_aligned"] = false;
  CHECK_NOTHROW(Trainer(unaligned.config, unaligned.data));
  spec.data = "synthetic:mosi-aligned";
  Run aligned = prepared_run(spec);
  CHECK_NOTHROW(Trainer(aligned.config, aligned.data));
}
