// MISA: MMSA's state-dict names and parameter counts; forward, representations, the regularisers and grads
// against a PyTorch twin (tests/golden/make_misa_golden.py) with lengths from the file and with MMSA's
// text-mask rule; the regularisers alone; the use_bert glue (mask mean, lengths from the mask); the
// regularisers over the originals only when mixed samples ride along; defaults; errors; a small overfit.
#include <cmath>

#include "engine/checkpoint.h"
#include "models/misa.h"
#include "models/misa_losses.h"
#include "models/registry.h"
#include "msmix/mixing.h"
#include "msmix/optimizer.h"
#include "tests/files.h"
#include "tests/golden/golden.h"
#include "tests/models/backbone_testing.h"
#include "tests/msmix/tiny_runs.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

// make_misa_golden.py's sizes: widths (6, 3, 4), hidden 8, 2 heads, feed-forward 16, loss weights (0.1, 0.3, 1).
Config tiny_config() {
  Config c = misa_defaults("mosi");
  c["feature_dims"] = {6, 3, 4};
  apply_overrides(c, {"hidden_size=8", "transformer_ff=16"});
  return c;
}

std::vector<int64_t> as_lengths(const Tensor& t) {
  std::vector<int64_t> v;
  for (float x : t.to_vector()) v.push_back(int64_t(x));
  return v;
}

// The fixture's loss L = sum(out * w) + aux, backward, then every value and grad against it.
void check_against_fixture(MISA& net, const golden::Fixture& fx, ModelInput& in, const Representations& z) {
  check_scaled(z.t, fx["z.t"], "z.t");
  check_scaled(z.a, fx["z.a"], "z.a");
  check_scaled(z.v, fx["z.v"], "z.v");
  ModelOutput out = net.fuse(z);
  check_scaled(out.prediction, fx["out"], "out");
  REQUIRE(out.aux_loss.defined());
  CHECK(out.aux_loss.item() == doctest::Approx(fx["aux"].item()).epsilon(1e-4));
  add(sum(mul(out.prediction, fx["w"])), out.aux_loss).backward();
  check_scaled(in.text.grad(), fx["grad.text"], "grad.text");
  check_scaled(in.audio.grad(), fx["grad.audio"], "grad.audio");
  check_scaled(in.vision.grad(), fx["grad.vision"], "grad.vision");
  // sp_discriminator and tlayer_norm (registered, never run) must have no grad: check_parameter_grads checks it.
  CHECK(check_parameter_grads(net, fx, [](const std::string&) { return false; }) > 10);
}

}  // namespace

// ---------------------------------------------------------------- names, shapes, counts

TEST_CASE("misa: MMSA's state-dict names and shapes; 1,138,033 parameters on MOSI without BERT (the twin's)") {
  Config c = backbone_defaults("misa", "mosi");  // MMSA's MOSI widths (768, 5, 20)
  MISA net(config_feature_dims(c), c);
  CHECK(net.num_parameters() == 1138033);
  CHECK(net.named_buffers().empty());
  NamedTensors params = net.named_parameters();
  CHECK(params.front().first == "vrnn1.weight_ih_l0");
  CHECK(params[4].first == "vrnn1.weight_ih_l0_reverse");
  CHECK(params.back().first == "transformer_encoder.layers.0.norm2.bias");
  auto state = net.state_dict();
  CHECK(state.at("vrnn1.weight_ih_l0").shape() == Shape{80, 20});
  CHECK(state.at("vrnn2.weight_ih_l0_reverse").shape() == Shape{80, 40});
  CHECK(state.at("arnn2.weight_hh_l0").shape() == Shape{20, 5});
  CHECK(state.at("project_t.project_t.weight").shape() == Shape{128, 768});
  CHECK(state.at("project_v.project_v.weight").shape() == Shape{128, 80});
  CHECK(state.at("project_a.project_a.weight").shape() == Shape{128, 20});
  CHECK(state.at("project_a.project_a_layer_norm.bias").shape() == Shape{128});
  CHECK(state.count("private_t.private_t_1.weight") == 1);
  CHECK(state.count("private_a.private_a_3.weight") == 1);  // MMSA's name
  CHECK(state.count("shared.shared_1.bias") == 1);
  CHECK(state.count("recon_v.recon_v_1.weight") == 1);
  CHECK(state.at("sp_discriminator.sp_discriminator_layer_1.weight").shape() == Shape{4, 128});
  CHECK(state.at("fusion.fusion_layer_1.weight").shape() == Shape{384, 768});
  CHECK(state.at("fusion.fusion_layer_3.weight").shape() == Shape{1, 384});
  CHECK(state.at("tlayer_norm.weight").shape() == Shape{1536});
  CHECK(state.at("vlayer_norm.weight").shape() == Shape{40});
  CHECK(state.at("transformer_encoder.layers.0.self_attn.in_proj_weight").shape() == Shape{384, 128});
  CHECK(state.at("transformer_encoder.layers.0.linear1.weight").shape() == Shape{2048, 128});
  // MOSEI and SIMS (SIMS's 709-wide vision makes its two BiLSTMs 20.5M of the 21.7M).
  for (auto [dataset, count] : {std::pair{"mosei", 1435105}, std::pair{"sims", 21664749}}) {
    Config d = backbone_defaults("misa", dataset);
    CHECK(make_backbone("misa", config_feature_dims(d), d)->num_parameters() == count);
  }
  // With BERT: its encoder under bertmodel.model.*, first in the order; built here with a small BERT.
  Config tiny_bert = tiny_config();
  apply_overrides(tiny_bert, {"use_bert=true", "bert_vocab=20", "bert_hidden=6", "bert_layers=1", "bert_heads=2",
                              "bert_intermediate=8", "bert_max_positions=10", "bert_dropout=0"});
  MISA with_bert(config_feature_dims(tiny_bert), tiny_bert);
  REQUIRE(with_bert.bert() != nullptr);
  CHECK(with_bert.named_parameters()[0].first == "bertmodel.model.embeddings.word_embeddings.weight");
  CHECK(with_bert.num_parameters() == 3961 + with_bert.bert()->num_parameters());
}

// ---------------------------------------------------------------- against the PyTorch twin

TEST_CASE("misa: forward, representations, regularisers and grads match the PyTorch twin, own lengths (golden)") {
  golden::Fixture fx = golden::load("misa/features.json");
  Config c = tiny_config();
  MISA net(config_feature_dims(c), c);
  REQUIRE(net.num_parameters() == 3961);  // the twin's count
  fill_formula_weights(net);
  net.eval();
  ModelInput in = fixture_input(fx);
  in.audio_lengths = as_lengths(fx["audio_lengths"]);
  in.vision_lengths = as_lengths(fx["vision_lengths"]);
  check_against_fixture(net, fx, in, net.encode(in));
}

TEST_CASE("misa: text features averaged over text_bert's mask; MMSA's use_bert lengths (golden)") {
  golden::Fixture fx = golden::load("misa/masked.json");
  Config c = tiny_config();
  MISA net(config_feature_dims(c), c);
  fill_formula_weights(net);
  net.eval();
  // The file's features with its text_bert mask (use_bert=false), audio and vision over the mask's counts as
  // MMSA's use_bert rule has them: encode() and encode_states() agree with the twin.
  ModelInput in = fixture_input(fx);
  const Tensor mask = fx["mask"];  // [4, 3]
  in.text_bert = Tensor::zeros({4, 3, 3});  // ids and segments 0: only the mask row is read
  for (int64_t b = 0; b < 4; ++b)
    for (int64_t t = 0; t < 3; ++t) in.text_bert.data()[b * 9 + 3 + t] = mask.data()[b * 3 + t];
  in.audio_lengths = in.vision_lengths = as_lengths(fx["audio_lengths"]);
  REQUIRE(in.audio_lengths == as_lengths(fx["vision_lengths"]));
  {
    NoGradGuard no_grad;
    Representations s = net.encode_states(in.text, mask, in.audio, in.vision, in.audio_lengths, in.vision_lengths);
    check_scaled(s.t, fx["z.t"], "encode_states z.t");
  }
  check_against_fixture(net, fx, in, net.encode(in));
  ModelInput bad = fixture_input(fx);
  bad.text_bert = Tensor::ones({4, 3, 5});
  check_throws_with([&] { net.encode(bad); }, {"MISA", "text_bert is [4, 3, 5]", "[4, 3, 6]"});
}

TEST_CASE("misa losses: soft orthogonality and the central moment discrepancy, values and grads (golden)") {
  golden::Fixture fx = golden::load("misa/losses.json");
  for (const char* key : {"diff", "cmd3", "cmd5"}) {
    CAPTURE(key);
    Tensor x1 = fx["x1"], x2 = fx["x2"];
    x1.set_requires_grad(true), x2.set_requires_grad(true);
    const std::string k = key;
    Tensor value = k == "diff" ? misa_diff_loss(x1, x2) : central_moment_discrepancy(x1, x2, k == "cmd3" ? 3 : 5);
    CHECK(value.item() == doctest::Approx(fx[k].item()).epsilon(1e-5));
    value.backward();
    check_scaled(x1.grad(), fx["grad.x1." + k], "grad.x1");
    check_scaled(x2.grad(), fx["grad.x2." + k], "grad.x2");
  }
  // Identical batches: both are 0 (diff only for orthogonal ones; a batch against itself is not).
  Tensor x = Tensor::randn({6, 3});
  CHECK(central_moment_discrepancy(x, x, 5).item() == 0.0f);
  CHECK(misa_diff_loss(x, x).item() > 0.0f);
  check_throws_with([] { misa_diff_loss(Tensor::zeros({2, 3}), Tensor::zeros({2, 4})); },
                    {"misa_diff_loss", "[2, 3]", "[2, 4]"});
  check_throws_with([] { central_moment_discrepancy(Tensor::zeros({2, 3}), Tensor::zeros({2, 3}), 0); },
                    {"central_moment_discrepancy", "moments"});
}

// ---------------------------------------------------------------- use_bert, mixing, defaults, errors

TEST_CASE("misa (use_bert): BERT's states averaged over the mask, whose counts are the audio and vision lengths") {
  Config c = tiny_config();
  apply_overrides(c, {"use_bert=true", "bert_vocab=20", "bert_hidden=6", "bert_layers=1", "bert_heads=2",
                      "bert_intermediate=8", "bert_max_positions=10", "bert_dropout=0"});
  manual_seed(4);
  MISA net(config_feature_dims(c), c);
  net.eval();
  const int64_t counts[3] = {5, 2, 3};
  Tensor text_bert = Tensor::zeros({3, 3, 5});
  for (int64_t b = 0; b < 3; ++b)
    for (int64_t t = 0; t < counts[b]; ++t)
      text_bert.data()[b * 15 + t] = float(1 + 3 * t + b), text_bert.data()[b * 15 + 5 + t] = 1;
  ModelInput in;
  in.text = text_bert, in.audio = Tensor::randn({3, 6, 3}), in.vision = Tensor::randn({3, 5, 4});
  in.audio_lengths = {6, 6, 6};  // the file's own lengths: not MMSA's with use_bert
  NoGradGuard no_grad;
  Representations z = net.encode(in);
  Tensor mask = reshape(slice(text_bert, 1, 1, 2), {3, 5});
  Representations want = net.encode_states(net.bert()->forward(text_bert), mask, in.audio, in.vision, {5, 2, 3},
                                           {5, 2, 3});
  check_close(z.t, want.t, 1e-6, 1e-7, "u_t");
  check_close(z.a, want.a, 1e-6, 1e-7, "u_a");
  check_close(z.v, want.v, 1e-6, 1e-7, "u_v");
  // A mask longer than the audio: MMSA's rule needs as many audio steps as text tokens.
  ModelInput short_audio = in;
  short_audio.audio = Tensor::randn({3, 4, 3});
  check_throws_with([&] { net.encode(short_audio); },
                    {"MISA", "sample 0 has length 5", "audio sequence has 4 steps", "text's token counts"});
  Tensor empty = text_bert.clone();
  for (int64_t t = 0; t < 5; ++t) empty.data()[15 + 5 + t] = 0;
  in.text = empty;
  check_throws_with([&] { net.encode(in); }, {"MISA (use_bert)", "sample 1", "no text token"});
  in.text = Tensor::randn({3, 5, 6});
  check_throws_with([&] { net.encode(in); }, {"MISA (use_bert)", "text_bert [B, 3, L > 0]", "[3, 5, 6]"});
}

TEST_CASE("misa (use_bert): the trainer loads bert_weights and trains it with MS-Mix on synthetic token ids") {
  RunSpec spec;
  spec.model = "misa";
  spec.data = "synthetic:mosi";
  spec.mix = "msmix";
  spec.max_epochs = 2;
  spec.overrides = {"use_bert=true",         "bert_vocab=4000",      "bert_hidden=8",  "bert_layers=1",
                    "bert_heads=2",          "bert_intermediate=8",  "hidden_size=16", "transformer_ff=32",
                    "synthetic_scale=0.125", "synthetic_max_steps=6"};
  Run run = prepared_run(spec);
  REQUIRE(run.data.train.text_bert.defined());
  check_throws_with([&] { Trainer(run.config, run.data); }, {"misa", "use_bert=true", "bert_weights=PATH"});
  TempDir tmp("misa_bert");
  manual_seed(9);
  BertModel pretrained(bert_sizes(run.config));
  save_safetensors((tmp.path / "bert.safetensors").string(), pretrained.state_dict());
  run.config["bert_weights"] = (tmp.path / "bert.safetensors").string();
  Trainer trainer(run.config, run.data);
  REQUIRE(trainer.model().bert() != nullptr);
  const auto loaded = trainer.model().bert()->state_dict();
  for (const auto& [name, t] : pretrained.state_dict())
    CHECK_MESSAGE(loaded.at(name).to_vector() == t.to_vector(), name);
  TrainResult r = trainer.fit();
  REQUIRE(r.log.size() == 2);
  for (const Json& epoch : r.log) {
    CHECK(std::isfinite(epoch["train_loss"].get<double>()));
    CHECK(std::isfinite(epoch["valid_loss"].get<double>()));
  }
  // Fine-tuned: the word embeddings moved from the loaded ones.
  CHECK(trainer.model().bert()->state_dict().at("embeddings.word_embeddings.weight").to_vector() !=
        pretrained.state_dict().at("embeddings.word_embeddings.weight").to_vector());
}

TEST_CASE("misa: with mixed samples along, the regularisers are the originals' and each row's prediction its own") {
  Config c = tiny_config();
  manual_seed(6);
  MISA net(config_feature_dims(c), c);
  net.eval();  // no dropout: rows can be compared across calls
  NoGradGuard no_grad;
  Representations z = net.encode(random_input(5, {3, 4, 4}, {6, 3, 4}, 1));
  Representations other = net.encode(random_input(3, {3, 4, 4}, {6, 3, 4}, 2));
  Representations both = concat_batches(z, other);
  CHECK(both.original_rows == 5);
  ModelOutput alone = net.fuse(z), along = net.fuse(both), others = net.fuse(other);
  CHECK(along.prediction.shape() == Shape{8, 1});
  check_close(slice(along.prediction, 0, 0, 5), alone.prediction, 1e-5, 1e-6, "originals' predictions");
  check_close(slice(along.prediction, 0, 5, 8), others.prediction, 1e-5, 1e-6, "mixed samples' predictions");
  CHECK(along.aux_loss.item() == doctest::Approx(alone.aux_loss.item()).epsilon(1e-5));
  both.original_rows = 0;  // all eight: another value
  CHECK(std::fabs(net.fuse(both).aux_loss.item() - alone.aux_loss.item()) > 1e-4);
}

TEST_CASE("misa: defaults are MMSA's; errors name the problem") {
  Config mosi = misa_defaults("mosi"), mosei = misa_defaults("mosei"), sims = misa_defaults("sims");
  CHECK(mosi["batch_size"] == 16);
  CHECK(mosi["learning_rate"].get<double>() == doctest::Approx(1e-4));
  CHECK(mosi["weight_decay"].get<double>() == 0.0);  // MMSA's MISA trainer gives Adam none
  CHECK(mosi["loss"] == "mse");
  CHECK(mosi["optimizer"] == "adam");
  CHECK(mosi["update_epochs"] == 2);
  CHECK(mosi["grad_clip"].get<double>() == doctest::Approx(0.8));
  CHECK(mosi["early_stop"] == 8);
  CHECK(mosi["hidden_size"] == 128);
  CHECK(mosi["dropout"].get<double>() == doctest::Approx(0.2));
  CHECK(mosi["diff_weight"].get<double>() == doctest::Approx(0.1));
  CHECK(mosi["sim_weight"].get<double>() == doctest::Approx(0.3));
  CHECK(mosi["recon_weight"].get<double>() == doctest::Approx(1.0));
  CHECK(mosi["need_normalized"] == false);
  CHECK(mosei["batch_size"] == 64);
  CHECK(mosei["dropout"].get<double>() == doctest::Approx(0.5));
  CHECK(mosei["sim_weight"].get<double>() == doctest::Approx(0.8));
  CHECK(sims["recon_weight"].get<double>() == doctest::Approx(0.8));
  CHECK(sims["grad_clip"].get<double>() == doctest::Approx(1.0));
  CHECK(misa_defaults("mosi-utterance")["feature_dims"] == Config({100, 73, 100}));
  check_throws_with([] { misa_defaults("iemocap"); }, {"misa_defaults", "iemocap"});

  Config c = tiny_config();
  MISA net(config_feature_dims(c), c);
  ModelInput ok = random_input(2, {3, 4, 4}, {6, 3, 4}, 1);
  ModelInput bad = ok;
  bad.vision = Tensor::randn({2, 4, 5});
  check_throws_with([&] { net.encode(bad); }, {"MISA", "vision", "[2, 4, 5]"});
  bad = ok;
  bad.audio_lengths = {4, 7};
  check_throws_with([&] { net.encode(bad); }, {"MISA", "sample 1 has length 7", "audio sequence has 4 steps"});
  bad = ok;
  bad.vision_lengths = {4};
  check_throws_with([&] { net.encode(bad); }, {"MISA", "1 vision lengths for a batch of 2"});
  Representations z = net.encode(ok);
  z.a = Tensor::zeros({2, 7});
  check_throws_with([&] { net.fuse(z); }, {"MISA", "representation a", "[2, 7]"});
  Config heads = c;
  apply_override(heads, "transformer_heads=3");
  check_throws_with([&] { MISA(config_feature_dims(heads), heads); }, {"MISA", "transformer_heads 3"});
  Config bert = c;
  bert["use_bert"] = true;
  check_throws_with([&] { MISA(config_feature_dims(bert), bert); }, {"MISA", "BERT's hidden width 768", "6"});
  CHECK(c["use_cmd_sim"] == true);  // MMSA's key and value on every dataset
  Config adversarial = c;
  apply_override(adversarial, "use_cmd_sim=false");
  check_throws_with([&] { MISA(config_feature_dims(adversarial), adversarial); },
                    {"MISA", "use_cmd_sim=false", "not built", "domain_loss_criterion"});
}

TEST_CASE("misa: overfits 64 synthetic samples with its regularisers (MSE falls 5x with Adam)") {
  const int64_t N = 64;
  manual_seed(5);
  Config c = tiny_config();
  apply_overrides(c, {"hidden_size=16", "transformer_ff=32", "dropout=0", "transformer_dropout=0"});
  MISA net(config_feature_dims(c), c);
  ModelInput in = random_input(N, {3, 5, 4}, {6, 3, 4}, 21);
  for (int64_t i = 0; i < N; ++i) in.audio_lengths.push_back(1 + i % 5), in.vision_lengths.push_back(4 - i % 3);
  AdamOptions o;
  o.lr = 3e-3f;
  Adam opt(net.parameters(), o);
  auto [first, last] =  // the regularisers join the MSE, as in training
      overfit(net, in, overfit_labels(in), opt, 150, [](const Tensor& p, const Tensor& y) { return mse_loss(p, y); });
  MESSAGE("MISA overfit: MSE " << first << " -> " << last);
  CHECK(last < first / 5);
}
