// MMSA's LF_DNN, TFN and LMF: state-dict names, shapes and trainable counts against MMSA v2.2.1 at its
// defaults; forward, representations and grads against PyTorch twins (tests/golden/make_backbone_golden.py)
// in eval and train mode; the defaults table and its overrides; optimizer groups (LMF's quirk); task loss;
// and a 64-sample overfit with Adam per backbone.
#include <algorithm>
#include <cmath>
#include <set>

#include "models/lf_dnn.h"
#include "models/lmf.h"
#include "models/registry.h"
#include "models/tfn.h"
#include "msmix/optimizer.h"
#include "tests/golden/golden.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

std::vector<std::string> keys(const std::map<std::string, Tensor>& state) {
  std::vector<std::string> out;
  for (const auto& [name, t] : state) out.push_back(name);
  return out;
}

// MMSA's state_dict keys for the sub-networks (the same in all three backbones).
std::vector<std::string> subnet_keys() {
  std::vector<std::string> out;
  for (const char* m : {"audio_subnet", "video_subnet"}) {
    for (const char* k : {"norm.weight", "norm.bias", "norm.running_mean", "norm.running_var",
                          "norm.num_batches_tracked", "linear_1.weight", "linear_1.bias", "linear_2.weight",
                          "linear_2.bias", "linear_3.weight", "linear_3.bias"})
      out.push_back(std::string(m) + "." + k);
  }
  for (const char* k : {"rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0",
                        "linear_1.weight", "linear_1.bias"})
    out.push_back(std::string("text_subnet.") + k);
  return out;
}

std::vector<std::string> post_fusion_keys() {
  return {"post_fusion_layer_1.weight", "post_fusion_layer_1.bias", "post_fusion_layer_2.weight",
          "post_fusion_layer_2.bias", "post_fusion_layer_3.weight", "post_fusion_layer_3.bias"};
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

std::shared_ptr<Backbone> at_defaults(const std::string& model, const std::string& dataset) {
  Config c = backbone_defaults(model, dataset);
  return make_backbone(model, config_feature_dims(c), c);
}

Shape shape_of(const Backbone& m, const std::string& name) { return m.state_dict().at(name).shape(); }

// The golden fixtures' sizes (see make_backbone_golden.py).
Config tiny_config(const std::string& model) {
  Config c = backbone_defaults(model, "mosi");
  apply_overrides(c, {"feature_dims=[6,4,5]", "hidden_dims=[6,3,4]", "dropouts=[0,0,0,0]"});
  if (model == "lmf") apply_override(c, "rank=2");
  else apply_overrides(c, {"text_out=3", "post_fusion_dim=5"});
  return c;
}

void check_golden(const std::string& model, bool training, bool vision_2d) {
  std::string case_name = model + (training ? "_train" : "_eval");
  CAPTURE(case_name);
  CAPTURE(vision_2d);
  golden::Fixture fx = golden::load("backbones/" + case_name + ".json");
  Config c = tiny_config(model);
  auto net = make_backbone(model, config_feature_dims(c), c);
  net->load_state_dict(fx.with_prefix("state."));
  net->train(training);
  ModelInput in;
  in.text = fx["text"], in.audio = fx["audio"], in.vision = fx["vision"];
  if (vision_2d) in.vision = reshape(in.vision, {in.vision.size(0), in.vision.size(2)});  // [B, D] works too
  for (Tensor* x : {&in.text, &in.audio, &in.vision}) x->set_requires_grad(true);
  Representations z = net->encode(in);
  check_close(z.t, fx["z.t"], 1e-4, 1e-5, "z.t");
  check_close(z.a, fx["z.a"], 1e-4, 1e-5, "z.a");
  check_close(z.v, fx["z.v"], 1e-4, 1e-5, "z.v");
  ModelOutput out = net->fuse(z);
  CHECK(!out.aux_loss.defined());
  check_close(out.prediction, fx["out"], 1e-4, 1e-5, "out");
  out.prediction.backward(fx["w"]);
  check_close(in.text.grad(), fx["grad.text"], 1e-4, 1e-5, "grad.text");
  check_close(in.audio.grad(), fx["grad.audio"], 1e-4, 1e-5, "grad.audio");
  Tensor vision_grad = vision_2d ? reshape(in.vision.grad(), fx["vision"].shape()) : in.vision.grad();
  check_close(vision_grad, fx["grad.vision"], 1e-4, 1e-5, "grad.vision");
  int checked = 0;
  for (const auto& [name, p] : net->named_parameters()) {
    if (!p.requires_grad()) continue;
    REQUIRE_MESSAGE(p.grad().defined(), "no grad for " << name);
    check_close(p.grad(), fx["grad." + name], 1e-4, 1e-5, "grad." + name);
    ++checked;
  }
  CHECK(checked == int(fx.with_prefix("grad.").size()) - 3);  // every parameter grad the fixture has
  for (const auto& [name, b] : net->named_buffers())
    check_close(b, fx["state_after." + name], 1e-4, 1e-5, "state_after." + name);
}

int64_t count(const NamedParamGroup& g) {
  int64_t n = 0;
  for (const auto& [name, p] : g.params) n += p.numel();
  return n;
}

}  // namespace

// ---------------------------------------------------------------- names, shapes, counts (MMSA v2.2.1)

TEST_CASE("backbones: state-dict names equal MMSA's; trainable counts at MOSI defaults, dims (768, 5, 20)") {
  auto lf = at_defaults("lf_dnn", "mosi");
  std::vector<std::string> expect = subnet_keys();
  for (const auto& k : post_fusion_keys()) expect.push_back(k);
  CHECK(keys(lf->state_dict()) == sorted(expect));
  CHECK(lf->num_parameters() == 597171);
  CHECK(at_defaults("mult", "mosi")->num_parameters() == 2571551);  // through the registry and defaults table

  auto tfn = at_defaults("tfn", "mosi");
  expect.push_back("output_range");
  expect.push_back("output_shift");
  CHECK(keys(tfn->state_dict()) == sorted(expect));
  CHECK(tfn->num_parameters() == 9497043);
  CHECK(tfn->num_parameters(false) == 9497045);  // output_range and output_shift do not train
  // Own parameters first, as PyTorch's parameters() (MMSA's TFN trainer skips [:2]).
  CHECK(tfn->named_parameters()[0].first == "output_range");
  CHECK(tfn->named_parameters()[1].first == "output_shift");
  CHECK(shape_of(*tfn, "post_fusion_layer_1.weight") == Shape{64, 33 * 129 * 33});
  CHECK(shape_of(*tfn, "text_subnet.rnn.weight_ih_l0") == Shape{4 * 128, 768});
  CHECK(shape_of(*tfn, "audio_subnet.norm.running_mean") == Shape{5});
  CHECK(shape_of(*tfn, "audio_subnet.norm.num_batches_tracked") == Shape{});

  auto lmf = at_defaults("lmf", "mosi");
  expect = subnet_keys();
  for (const char* k : {"audio_factor", "video_factor", "text_factor", "fusion_weights", "fusion_bias"})
    expect.push_back(k);
  CHECK(keys(lmf->state_dict()) == sorted(expect));
  CHECK(lmf->num_parameters() == 505071);
  std::vector<std::string> first;
  for (size_t i = 0; i < 6; ++i) first.push_back(lmf->named_parameters()[i].first);
  CHECK(first == std::vector<std::string>{"audio_factor", "video_factor", "text_factor", "fusion_weights",
                                          "fusion_bias", "audio_subnet.norm.weight"});
  CHECK(shape_of(*lmf, "audio_factor") == Shape{3, 17, 1});
  CHECK(shape_of(*lmf, "video_factor") == Shape{3, 129, 1});
  CHECK(shape_of(*lmf, "text_factor") == Shape{3, 65, 1});
  CHECK(shape_of(*lmf, "fusion_weights") == Shape{1, 3});
  CHECK(shape_of(*lmf, "fusion_bias") == Shape{1, 1});
  CHECK(shape_of(*lmf, "text_subnet.linear_1.weight") == Shape{64, 128});
}

TEST_CASE("backbones: shapes and counts at MOSEI (768, 74, 35) and SIMS (768, 33, 709) defaults") {
  // Counts from MMSA v2.2.1's own modules at config_regression.json's values.
  struct Case {
    const char* model;
    const char* dataset;
    int64_t params;
  };
  for (const Case& k : {Case{"lf_dnn", "mosei", 572283}, Case{"lf_dnn", "sims", 635821}, Case{"tfn", "mosei", 5042539},
                 Case{"tfn", "sims", 35632077}, Case{"lmf", "mosei", 508475}, Case{"lmf", "sims", 272381}}) {
    CAPTURE(std::string(k.model) + " " + k.dataset);
    auto m = at_defaults(k.model, k.dataset);
    CHECK(m->num_parameters() == k.params);
  }
  auto lf = at_defaults("lf_dnn", "mosei");
  CHECK(shape_of(*lf, "audio_subnet.linear_1.weight") == Shape{32, 74});
  CHECK(shape_of(*lf, "post_fusion_layer_1.weight") == Shape{128, 288});
  auto tfn = at_defaults("tfn", "mosei");
  CHECK(shape_of(*tfn, "post_fusion_layer_1.weight") == Shape{16, 129 * 129 * 17});
  CHECK(shape_of(*tfn, "video_subnet.norm.running_var") == Shape{35});
  auto lmf = at_defaults("lmf", "sims");
  CHECK(shape_of(*lmf, "video_factor") == Shape{4, 65, 1});
  CHECK(shape_of(*lmf, "text_factor") == Shape{4, 33, 1});
  CHECK(shape_of(*lmf, "video_subnet.linear_1.weight") == Shape{64, 709});
}

// ---------------------------------------------------------------- against PyTorch

TEST_CASE("backbones golden: LF_DNN eval and train (BatchNorm batch stats), vision [B, 1, D] and [B, D]") {
  check_golden("lf_dnn", false, false);
  check_golden("lf_dnn", true, true);
}

TEST_CASE("backbones golden: TFN eval and train, representations with the 1 in front, sigmoid * 6 - 3") {
  check_golden("tfn", false, true);
  check_golden("tfn", true, false);
}

TEST_CASE("backbones golden: LMF eval and train, fusion weights and bias get grads") {
  check_golden("lmf", false, false);
  check_golden("lmf", true, true);
}

TEST_CASE("backbones: forward = fuse(encode); a convex mix of TFN / LMF representations keeps the leading 1") {
  for (std::string model : {"lf_dnn", "tfn", "lmf"}) {
    CAPTURE(model);
    manual_seed(3);
    Config c = tiny_config(model);
    auto net = make_backbone(model, config_feature_dims(c), c);
    net->eval();
    ModelInput in;
    in.text = Tensor::randn({3, 4, 6}), in.audio = Tensor::randn({3, 1, 4}), in.vision = Tensor::randn({3, 5});
    Representations z = net->encode(in);
    check_close(net->forward(in).prediction, net->fuse(z).prediction, 0, 0, "forward");
    if (model == "lf_dnn") {
      CHECK(z.t.shape() == Shape{3, 3});
      continue;
    }
    Representations mixed;
    mixed.t = add(mul(z.t, 0.3f), mul(index_select(z.t, 0, Tensor::from_vector({2, 0, 1}, {3})), 0.7f));
    mixed.a = z.a, mixed.v = z.v;
    CHECK(slice(mixed.t, 1, 0, 1).to_vector() == std::vector<float>(3, 1.0f));
    CHECK(net->fuse(mixed).prediction.shape() == Shape{3, 1});
  }
}

// ---------------------------------------------------------------- defaults, groups, loss

TEST_CASE("defaults: MMSA's values per (backbone, dataset), the loss, and the common keys") {
  Config tfn = backbone_defaults("tfn", "mosi");
  CHECK(config_ints(tfn, "hidden_dims", 3) == std::vector<int64_t>{128, 32, 128});
  CHECK(config_int(tfn, "text_out") == 32);
  CHECK(config_int(tfn, "post_fusion_dim") == 64);
  CHECK(config_floats(tfn, "dropouts", 4) == std::vector<float>{0.3f, 0.3f, 0.3f, 0.5f});
  CHECK(config_int(tfn, "batch_size") == 32);
  CHECK(config_float(tfn, "learning_rate") == 1e-3f);
  CHECK(config_float(tfn, "weight_decay") == 0.0f);
  CHECK(config_string(tfn, "loss") == "l1");
  CHECK(config_int(tfn, "early_stop") == 8);
  CHECK(config_float(tfn, "grad_clip") == -1.0f);
  CHECK(config_bool(tfn, "need_normalized"));
  CHECK(config_string(tfn, "model") == "tfn");
  CHECK(config_string(tfn, "dataset") == "mosi");
  Config tfn_sims = backbone_defaults("tfn", "sims");
  CHECK(config_int(tfn_sims, "text_out") == 256);
  CHECK(config_float(tfn_sims, "learning_rate") == 5e-4f);
  CHECK(config_ints(tfn_sims, "feature_dims", 3) == std::vector<int64_t>{768, 33, 709});

  Config lmf = backbone_defaults("lmf", "mosei");
  CHECK(config_int(lmf, "rank") == 4);
  CHECK(config_int(lmf, "batch_size") == 32);
  CHECK(config_float(lmf, "weight_decay") == 1e-3f);
  CHECK(!config_bool(lmf, "train_fusion_weights"));
  CHECK(!lmf.contains("text_out"));  // derived: text hidden / 2
  Config lmf_sims = backbone_defaults("lmf", "sims");
  CHECK(config_float(lmf_sims, "factor_lr") == 5e-4f);
  CHECK(config_ints(lmf_sims, "hidden_dims", 3) == std::vector<int64_t>{64, 16, 64});

  Config lf = backbone_defaults("lf_dnn", "mosi");
  CHECK(config_int(lf, "batch_size") == 128);
  CHECK(config_float(lf, "weight_decay") == 0.01f);
  CHECK(config_ints(lf, "feature_dims", 3) == std::vector<int64_t>{768, 5, 20});
  CHECK(backbones_with_defaults() ==
        std::vector<std::string>{"lf_dnn", "tfn", "lmf", "mult", "misa", "almt", "glomo"});
  for (const auto& model : backbones_with_defaults())  // MMSA's L1, but MISA's and ALMT's trainers use MSE
    for (const auto& dataset : known_datasets())
      CHECK(config_string(backbone_defaults(model, dataset), "loss") ==
            (model == "almt" || model == "misa" ? "mse" : "l1"));
  // mosi-utterance: MOSI's hyperparameters with the file's widths; MulT's kernels shrink to 1.
  Config tfn_u = backbone_defaults("tfn", "mosi-utterance"), tfn_m = backbone_defaults("tfn", "mosi");
  CHECK(config_ints(tfn_u, "feature_dims", 3) == std::vector<int64_t>{100, 73, 100});
  CHECK(tfn_u["hidden_dims"] == tfn_m["hidden_dims"]);
  CHECK(tfn_u["learning_rate"] == tfn_m["learning_rate"]);
  CHECK(config_int(backbone_defaults("mult", "mosi-utterance"), "conv1d_kernel_size_l") == 1);
}

TEST_CASE("defaults: key=value overrides are type-checked; errors list the valid keys") {
  Config c = backbone_defaults("lmf", "mosi");
  apply_overrides(c, {"rank=5", "learning_rate=2e-3", "weight_decay=0", "hidden_dims=[64, 8, 64]", "loss=mse",
                      "train_fusion_weights=true", "dropouts=[0.1,0.1,0.1,0.1]"});
  CHECK(config_int(c, "rank") == 5);
  CHECK(config_float(c, "learning_rate") == 2e-3f);
  CHECK(config_float(c, "weight_decay") == 0.0f);
  CHECK(c["weight_decay"].is_number_float());  // an integer given for a float stays a float
  CHECK(config_ints(c, "hidden_dims", 3) == std::vector<int64_t>{64, 8, 64});
  CHECK(config_string(c, "loss") == "mse");
  CHECK(config_bool(c, "train_fusion_weights"));
  CHECK(config_floats(c, "dropouts", 4) == std::vector<float>{0.1f, 0.1f, 0.1f, 0.1f});

  check_throws_with([&] { apply_override(c, "rnak=3"); }, {"unknown key 'rnak'", "valid keys:", "rank", "factor_lr"});
  check_throws_with([&] { apply_override(c, "rank=3.5"); }, {"'rank' needs an integer", "3.5"});
  check_throws_with([&] { apply_override(c, "rank=three"); }, {"'rank' needs an integer"});
  check_throws_with([&] { apply_override(c, "learning_rate=fast"); }, {"'learning_rate' needs a number"});
  check_throws_with([&] { apply_override(c, "train_fusion_weights=1"); }, {"needs a bool"});
  check_throws_with([&] { apply_override(c, "hidden_dims=[64, 8]"); }, {"'hidden_dims' needs an array of 3"});
  check_throws_with([&] { apply_override(c, "hidden_dims=[64, 8, 6.5]"); }, {"'hidden_dims' needs an array of 3"});
  check_throws_with([&] { apply_override(c, "rank"); }, {"'rank' is not key=value", "valid keys"});
  CHECK(config_int(c, "rank") == 5);  // failed overrides change nothing

  check_throws_with([] { backbone_defaults("tfm", "mosi"); }, {"unknown backbone 'tfm'", "lf_dnn, tfn, lmf"});
  check_throws_with([] { backbone_defaults("tfn", "iemocap"); }, {"unknown dataset 'iemocap'", "mosi, mosei, sims"});
  check_throws_with([&] { config_int(c, "nope"); }, {"lmf", "no key 'nope'", "valid keys"});
  check_throws_with([&] { config_string(c, "rank"); }, {"'rank' must be a string", "5"});
}

TEST_CASE("parameter groups: TFN and LF_DNN one group; LMF factors / subnets, fusion left out as MMSA") {
  auto tfn = at_defaults("tfn", "mosi");
  auto groups = parameter_groups(*tfn, backbone_defaults("tfn", "mosi"));
  REQUIRE(groups.size() == 1);
  CHECK(count(groups[0]) == 9497043);  // MMSA's parameters()[2:]: everything but output_range / shift
  CHECK(groups[0].lr == 1e-3f);
  CHECK(groups[0].weight_decay == 0.0f);

  auto lf = at_defaults("lf_dnn", "sims");
  groups = parameter_groups(*lf, backbone_defaults("lf_dnn", "sims"));
  REQUIRE(groups.size() == 1);
  CHECK(count(groups[0]) == 635821);
  CHECK(groups[0].lr == 5e-3f);
  CHECK(groups[0].weight_decay == 5e-3f);

  Config c = backbone_defaults("lmf", "sims");
  auto lmf = make_backbone("lmf", config_feature_dims(c), c);
  groups = parameter_groups(*lmf, c);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].name == "factors");
  CHECK(groups[0].params.size() == 3);
  CHECK(count(groups[0]) == 4 * (17 + 65 + 33));
  CHECK(groups[0].lr == 5e-4f);
  CHECK(groups[1].name == "subnets");
  CHECK(groups[1].lr == 2e-3f);
  CHECK(groups[0].weight_decay == 5e-3f);
  CHECK(groups[1].weight_decay == 5e-3f);
  CHECK(count(groups[0]) + count(groups[1]) == 272381 - 5);  // fusion_weights [1, 4] and fusion_bias [1, 1] out
  for (const auto& g : groups)
    for (const auto& [name, p] : g.params) CHECK(name.rfind("fusion_", 0) != 0);
  apply_override(c, "train_fusion_weights=true");
  groups = parameter_groups(*lmf, c);
  REQUIRE(groups.size() == 3);
  CHECK(groups[2].name == "fusion");
  CHECK(groups[2].params.size() == 2);
  CHECK(groups[2].tensors()[0].same(dynamic_cast<LMF&>(*lmf).fusion_weights));
}

TEST_CASE("task_loss: L1 by default (MMSA), mse when configured, unknown is an error") {
  Tensor pred = Tensor::from_vector({1, -2, 0.5f}, {3, 1}), target = Tensor::from_vector({0, 0, 0}, {3, 1});
  Config c = backbone_defaults("tfn", "mosi");
  CHECK(task_loss(c, pred, target).item() == doctest::Approx(3.5 / 3));
  CHECK(task_loss(Config::object(), pred, target).item() == doctest::Approx(3.5 / 3));
  apply_override(c, "loss=mse");
  CHECK(task_loss(c, pred, target).item() == doctest::Approx(5.25 / 3));
  apply_override(c, "loss=hinge");
  check_throws_with([&] { task_loss(c, pred, target); }, {"unknown loss 'hinge'"});
}

// ---------------------------------------------------------------- errors

TEST_CASE("backbones: bad inputs and configs are errors naming the model and the shapes") {
  Config c = tiny_config("tfn");
  auto tfn = make_backbone("tfn", config_feature_dims(c), c);
  ModelInput in;
  in.text = Tensor::randn({2, 4, 6}), in.audio = Tensor::randn({2, 7, 4}), in.vision = Tensor::randn({2, 1, 5});
  check_throws_with([&] { tfn->encode(in); }, {"tfn", "audio averaged over time", "[2, 7, 4]"});
  in.audio = Tensor::randn({2, 1, 3});
  check_throws_with([&] { tfn->encode(in); }, {"tfn", "[B, 1, 4]", "[2, 1, 3]"});
  in.audio = Tensor::randn({2, 4});
  in.text = Tensor::randn({2, 4, 7});
  check_throws_with([&] { tfn->encode(in); }, {"TextSubNet", "[2, 4, 7]"});
  in.text = Tensor::randn({2, 4, 6});
  Representations z = tfn->encode(in);
  z.v = Tensor::randn({2, 4});
  check_throws_with([&] { tfn->fuse(z); }, {"tfn", "representation v", "[2, 5]", "[2, 4]"});
  z = tfn->encode(in);
  z.t = Tensor::randn({3, 4});
  check_throws_with([&] { tfn->fuse(z); }, {"representation t", "[2, 4]", "[3, 4]"});

  check_throws_with([&] { make_backbone("mfn", {768, 5, 20}, c); }, {"unknown backbone 'mfn'", "tfn"});
  check_throws_with([&] { make_backbone("tfn", {768, 0, 20}, c); }, {"feature dims must be positive"});
  Config bad = c;
  bad.erase("text_out");
  check_throws_with([&] { make_backbone("tfn", {768, 5, 20}, bad); }, {"no key 'text_out'"});
  bad = c;
  bad["dropouts"] = {0.1, 0.1};
  check_throws_with([&] { make_backbone("tfn", {768, 5, 20}, bad); }, {"'dropouts' must be an array of 4 numbers"});
}

// ---------------------------------------------------------------- training

TEST_CASE("backbones: each overfits 64 synthetic samples (L1 falls 10x with Adam)") {
  const int64_t N = 64, T = 4;
  Generator gen(21);
  ModelInput in;
  in.text = Tensor::randn({N, T, 6}, gen), in.audio = Tensor::randn({N, 1, 4}, gen);
  in.vision = Tensor::randn({N, 1, 5}, gen);
  // A label in (-3, 3) that needs every modality: tanh of a sum of per-modality features.
  Tensor y = mul(tanh(add(add(mean(in.text, {1, 2}), sum(in.audio, {1, 2})), mul(sum(in.vision, {1, 2}), 0.5f))), 2.5f);
  y = reshape(y, {N, 1}).detach();
  for (std::string model : {"lf_dnn", "tfn", "lmf"}) {
    CAPTURE(model);
    manual_seed(5);
    Config c = backbone_defaults(model, "mosi");
    apply_overrides(c, {"feature_dims=[6,4,5]", "hidden_dims=[16,8,8]", "dropouts=[0,0,0,0]", "learning_rate=0.01"});
    if (model == "lmf") apply_overrides(c, {"rank=4", "factor_lr=0.01", "weight_decay=0"});
    else apply_overrides(c, {"text_out=8", "post_fusion_dim=32", "weight_decay=0"});
    auto net = make_backbone(model, config_feature_dims(c), c);
    std::vector<ParamGroup> groups;
    for (const auto& g : parameter_groups(*net, c)) groups.push_back({g.tensors(), g.lr, g.weight_decay});
    Adam opt(groups);
    float first = 0, last = 0;
    for (int step = 0; step < 150; ++step) {
      Tensor loss = task_loss(c, net->forward(in).prediction, y);
      if (step == 0) first = loss.item();
      last = loss.item();
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
    MESSAGE(model << ": L1 " << first << " -> " << last);
    CHECK(last < first / 10);
  }
}

TEST_CASE("backbones: every module knows its dotted path (the state dict's prefix) and its range name") {
  for (const std::string model : {"lf_dnn", "tfn", "lmf", "mult", "misa", "almt", "glomo"}) {
    CAPTURE(model);
    auto root = at_defaults(model, "mosi");
    CHECK(root->path().empty());
    CHECK(std::string(root->range_name()) == root->kind());  // a root's range: its kind
    // Walk the tree with the names the state dict is built from; each module's path must be that prefix.
    std::vector<std::pair<std::string, const Module*>> stack;
    for (const auto& [name, child] : root->children()) stack.emplace_back(name, child.get());
    int64_t modules = 0;
    while (!stack.empty()) {
      const auto [prefix, m] = stack.back();
      stack.pop_back();
      ++modules;
      CHECK(m->path() == prefix);
      CHECK(std::string(m->range_name()) == prefix + " (" + m->kind() + ")");
      CHECK(std::string(m->kind()) != "Module");  // every class says what it is
      for (const auto& [name, t] : m->named_parameters()) {
        bool found = false;  // its parameters appear in the root's state dict under its path
        for (const auto& [full, u] : root->named_parameters()) found = found || (full == prefix + "." + name);
        CHECK_MESSAGE(found, prefix << "." << name);
      }
      for (const auto& [name, child] : m->children()) stack.emplace_back(prefix + "." + name, child.get());
    }
    CHECK(modules > 3);
  }
}
