// BERT's encoder (models/bert.h): Hugging Face's names and bert-base's 109,482,240 parameters (ALMT with it:
// the spec's 112,085,889); forward and every grad against a PyTorch twin (tests/golden/make_bert_golden.py) with
// padded samples; padding never reaches the real positions; loading pretrained weights in Hugging Face's and
// Google's naming; ALMT with use_bert; the trainer's refusals and its bert_weights.
#include <cmath>
#include <filesystem>
#include <optional>

#include "data/dataset.h"
#include "engine/checkpoint.h"
#include "models/almt.h"
#include "models/bert.h"
#include "msmix/run_config.h"
#include "msmix/trainer.h"
#include "tests/files.h"
#include "tests/golden/golden.h"
#include "tests/models/backbone_testing.h"
#include "tests/msmix/tiny_runs.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

BertSizes tiny_sizes() {  // make_bert_golden.py's
  BertSizes s;
  s.vocab = 20, s.hidden = 8, s.layers = 2, s.heads = 2, s.intermediate = 12, s.max_positions = 10, s.type_vocab = 2;
  s.dropout = 0;
  return s;
}

}  // namespace

TEST_CASE("bert: Hugging Face's names; bert-base-uncased's 109,482,240 parameters inside ALMT's 112,085,889") {
  BertModel tiny(tiny_sizes());
  NamedTensors params = tiny.named_parameters();
  CHECK(params.front().first == "embeddings.word_embeddings.weight");
  CHECK(params[3].first == "embeddings.LayerNorm.weight");
  CHECK(params[5].first == "encoder.layer.0.attention.self.query.weight");
  CHECK(params.back().first == "pooler.dense.bias");
  auto state = tiny.state_dict();
  for (const char* n : {"encoder.layer.1.attention.self.value.bias", "encoder.layer.1.attention.output.dense.weight",
                        "encoder.layer.1.attention.output.LayerNorm.bias", "encoder.layer.0.intermediate.dense.weight",
                        "encoder.layer.0.output.dense.bias", "encoder.layer.0.output.LayerNorm.weight"})
    CHECK_MESSAGE(state.count(n) == 1, n);
  CHECK(state.at("encoder.layer.0.intermediate.dense.weight").shape() == Shape{12, 8});
  CHECK(state.at("embeddings.position_embeddings.weight").shape() == Shape{10, 8});
  CHECK(tiny.num_parameters() == 1408);  // the twin's count

  Config c = almt_defaults("mosi");
  c["feature_dims"] = {768, 5, 20};
  c["use_bert"] = true;
  ALMT almt(config_feature_dims(c), c);
  CHECK(almt.num_parameters() == 112085889);
  REQUIRE(almt.bert() != nullptr);
  CHECK(almt.bert()->num_parameters() == 109482240);
  CHECK(almt.named_parameters()[1].first == "bertmodel.model.embeddings.word_embeddings.weight");
  CHECK(almt.named_parameters()[0].first == "h_hyper");
  Config features = almt_defaults("mosi");
  features["feature_dims"] = {768, 5, 20};
  CHECK(ALMT(config_feature_dims(features), features).bert() == nullptr);
}

TEST_CASE("bert: forward and grads match the PyTorch twin, with padded samples (golden)") {
  golden::Fixture fx = golden::load("bert/bert.json");
  BertModel bert(tiny_sizes());
  fill_formula_weights(bert);
  Tensor out = bert.forward(fx["text_bert"]);
  check_scaled(out, fx["out"], "out");
  out.backward(fx["w"]);
  int compared = 0;
  for (const auto& [name, p] : bert.named_parameters()) {
    CAPTURE(name);
    if (name.rfind("pooler.", 0) == 0) {  // not run: no grad, as in the twin
      CHECK(!p.grad().defined());
      continue;
    }
    REQUIRE(p.grad().defined());
    if (name.size() > 23 && name.compare(name.size() - 23, 23, "attention.self.key.bias") == 0) {
      // Exactly 0 (softmax ignores a shift shared by a row's scores): float rounding only.
      for (float x : p.grad().to_vector()) CHECK(std::fabs(x) < 1e-6f);
      ++compared;
      continue;
    }
    check_scaled(p.grad(), fx["grad." + name], "grad." + name);
    ++compared;
  }
  CHECK(compared == int(fx.with_prefix("grad.").size()));
  // PyTorch gives the padding row of the word embeddings (id 0) no grad; neither do we.
  Tensor g = bert.embeddings->word_embeddings->weight.grad();
  for (int64_t j = 0; j < 8; ++j) CHECK(g.to_vector()[size_t(j)] == 0.0f);
}

TEST_CASE("bert: what sits in padded positions never reaches the real ones") {
  manual_seed(3);
  BertModel bert(tiny_sizes());
  bert.eval();
  golden::Fixture fx = golden::load("bert/bert.json");
  Tensor a = fx["text_bert"], b = a.clone();
  float* p = b.data();  // sample 2 has 2 real tokens: rewrite its padded ids and segments
  const int64_t L = a.size(2);
  for (int64_t t = 2; t < L; ++t) p[2 * 3 * L + t] = 7, p[2 * 3 * L + 2 * L + t] = 1;
  NoGradGuard no_grad;
  std::vector<float> ya = bert.forward(a).to_vector(), yb = bert.forward(b).to_vector();
  const int64_t H = 8;
  for (int64_t t = 0; t < 2; ++t)
    for (int64_t h = 0; h < H; ++h)
      CHECK(ya[size_t((2 * L + t) * H + h)] == doctest::Approx(yb[size_t((2 * L + t) * H + h)]).epsilon(1e-6));
  bool padded_differ = false;
  for (int64_t h = 0; h < H; ++h) padded_differ |= ya[size_t((2 * L + 3) * H + h)] != yb[size_t((2 * L + 3) * H + h)];
  CHECK(padded_differ);  // the rewrite did change something: the padded positions' own outputs

  check_throws_with([&] { bert.forward(Tensor::zeros({2, 2, 4})); }, {"BERT", "text_bert [B, 3, L]", "[2, 2, 4]"});
  check_throws_with([&] { bert.forward(Tensor::zeros({2, 3, 11})); }, {"BERT", "11 tokens", "10 positions"});
  BertSizes bad = tiny_sizes();
  bad.heads = 3;
  check_throws_with([&] { BertModel{bad}; }, {"BERT", "heads 3"});
}

TEST_CASE("bert: pretrained weights load in Hugging Face's and Google's naming; what is missing is named") {
  TempDir tmp("bert_weights");
  manual_seed(4);
  BertModel source(tiny_sizes()), target(tiny_sizes());
  // A pre-training checkpoint: "bert." prefix, LayerNorm gamma / beta, a cls head and the position_ids buffer.
  TensorDict file;
  for (const auto& [name, t] : source.state_dict()) {
    std::string n = "bert." + name;
    if (n.size() > 16 && n.compare(n.size() - 16, 16, "LayerNorm.weight") == 0) n = n.substr(0, n.size() - 6) + "gamma";
    if (n.size() > 14 && n.compare(n.size() - 14, 14, "LayerNorm.bias") == 0) n = n.substr(0, n.size() - 4) + "beta";
    file[n] = t;
  }
  file["cls.predictions.bias"] = Tensor::zeros({20});
  file["bert.embeddings.position_ids"] = Tensor::zeros({1, 10});
  const std::string path = (tmp.path / "bert.safetensors").string();
  save_safetensors(path, file);
  load_bert_weights(target, path);
  for (const auto& [name, t] : source.state_dict())
    CHECK_MESSAGE(target.state_dict().at(name).to_vector() == t.to_vector(), name);

  file.erase("bert.encoder.layer.1.output.dense.weight");
  file["bert.encoder.layer.0.intermediate.dense.bias"] = Tensor::zeros({5});
  save_safetensors(path, file);
  check_throws_with([&] { load_bert_weights(target, path); },
                    {"BERT weights", "encoder.layer.1.output.dense.weight", "encoder.layer.0.intermediate.dense.bias"});
}

TEST_CASE("almt with use_bert: BERT's last hidden states feed the embedding; the trainer needs bert_weights") {
  Config c = almt_defaults("mosi");
  apply_overrides(
      c, {"use_bert=true", "bert_vocab=4000", "bert_hidden=8", "bert_layers=1", "bert_heads=2", "bert_intermediate=8",
          "bert_dropout=0", "dst_feature_dims=16", "dst_feature_hidden_dims=16", "fusion_hidden_d=16"});
  c["feature_dims"] = {8, 5, 20};
  manual_seed(6);
  ALMT net(config_feature_dims(c), c);
  net.eval();
  Tensor text_bert = Tensor::zeros({2, 3, 6});
  float* p = text_bert.data();
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 6 - 2 * b; ++t) p[b * 18 + t] = float(100 + 37 * t + b), p[b * 18 + 6 + t] = 1;
  ModelInput in;
  in.text = text_bert, in.audio = Tensor::randn({2, 7, 5}), in.vision = Tensor::randn({2, 4, 20});
  std::optional<NoGradGuard> no_grad(std::in_place);  // until the trainer, which needs grads
  Representations z = net.encode(in);
  // The same as running BERT, then ALMT on its output as text features (a use_bert=false twin, same weights).
  Config f = c;
  f["use_bert"] = false;
  ALMT features(config_feature_dims(f), f);
  auto state = net.state_dict();
  std::map<std::string, Tensor> without_bert;
  for (const auto& [name, t] : state)
    if (name.rfind("bertmodel.", 0) != 0) without_bert[name] = t;
  features.load_state_dict(without_bert);
  features.eval();
  ModelInput as_features = in;
  as_features.text = net.bertmodel->forward(text_bert);
  Representations zf = features.encode(as_features);
  check_close(z.t, zf.t, 1e-6, 1e-7, "h_l");
  check_close(z.v, zf.v, 0, 0, "h_v");
  check_close(net.fuse(z).prediction, features.fuse(zf).prediction, 1e-6, 1e-7, "prediction");

  ModelInput bad = in;
  bad.text = Tensor::randn({2, 6, 8});  // features where token ids are expected
  check_throws_with([&] { net.encode(bad); }, {"ALMT (use_bert)", "text_bert [B, 3, L]", "[2, 6, 8]"});
  bad.text = Tensor::zeros({2, 3, 51});
  check_throws_with([&] { net.encode(bad); }, {"ALMT (use_bert)", "51 text tokens", "feature_length"});
  Config wide = c;
  wide["feature_dims"] = {768, 5, 20};
  check_throws_with([&] { ALMT(config_feature_dims(wide), wide); }, {"ALMT", "BERT's hidden width 8", "768"});

  no_grad.reset();
  // The trainer: synthetic:mosi carries token ids when use_bert is on; without bert_weights (or --weights) the
  // run is refused; with them, training starts from those weights (epoch 1 runs at lr 0: they stay as loaded).
  RunSpec spec;
  spec.model = "almt";
  spec.data = "synthetic:mosi";
  spec.max_epochs = 1;
  spec.overrides = {
      "use_bert=true",      "bert_vocab=4000",       "bert_hidden=8",         "bert_layers=1",
      "bert_heads=2",       "bert_intermediate=8",   "dst_feature_dims=16",   "dst_feature_hidden_dims=16",
      "fusion_hidden_d=16", "synthetic_scale=0.125", "synthetic_max_steps=6", "batch_size=16"};
  Config run = make_run_config(spec);
  Dataset data = load_data(run);
  REQUIRE(data.train.text_bert.defined());
  prepare_data(data, run);
  CHECK(run["feature_dims"][0] == 8);
  check_throws_with([&] { Trainer(run, data); }, {"almt", "use_bert=true", "bert_weights=PATH"});
  TempDir tmp("almt_bert");
  manual_seed(9);
  BertModel pretrained(bert_sizes(run));
  save_safetensors((tmp.path / "bert.safetensors").string(), pretrained.state_dict());
  run["bert_weights"] = (tmp.path / "bert.safetensors").string();
  Trainer trainer(run, data);
  trainer.fit();
  REQUIRE(trainer.model().bert() != nullptr);
  auto trained = trainer.model().bert()->state_dict();
  for (const auto& [name, t] : pretrained.state_dict())
    CHECK_MESSAGE(trained.at(name).to_vector() == t.to_vector(), name);

  RunSpec lf_spec = spec;  // a backbone without BERT
  lf_spec.model = "lf_dnn";
  lf_spec.overrides = {"use_bert=true", "synthetic_scale=0.125", "synthetic_max_steps=6"};
  Run lf = prepared_run(lf_spec);
  check_throws_with([&] { Trainer(lf.config, lf.data); }, {"lf_dnn", "use_bert=true", "no BERT"});
  // A file without token ids.
  Config plain = make_run_config(spec);
  plain["use_bert"] = false;
  Dataset plain_data = load_data(plain);
  plain["use_bert"] = true;
  check_throws_with([&] { prepare_data(plain_data, plain); }, {"use_bert=true", "text_bert", "use_bert=false"});
}
