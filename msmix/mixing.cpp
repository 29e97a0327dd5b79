#include "msmix/mixing.h"

#include <algorithm>
#include <cctype>
#include <numeric>

#include "engine/error.h"
#include "msmix/alignment_loss.h"
#include "msmix/multimix.h"
#include "ops/cpu/pair_selection.h"
#include "ops/ops.h"
#include "ops/pair_selection.h"

namespace msmix {

std::string mix_method_name(MixMethod method) {
  switch (method) {
    case MixMethod::None: return "none";
    case MixMethod::Mixup: return "mixup";
    case MixMethod::Manifold: return "manifold";
    case MixMethod::MultiMix: return "multimix";
    case MixMethod::MSMix: return "msmix";
  }
  return "?";
}

MixMethod parse_mix_method(const std::string& name) {
  for (MixMethod m : {MixMethod::None, MixMethod::Mixup, MixMethod::Manifold, MixMethod::MultiMix, MixMethod::MSMix})
    if (name == mix_method_name(m)) return m;
  throw Error(fmt::format("mix: unknown method '{}' (expected none, mixup, manifold, multimix or msmix)", name));
}

float label_scale_for(const std::string& dataset) {
  std::string lower = dataset;
  for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
  return lower == "sims" ? 1.0f : 3.0f;
}

// ---- ratios and mixing

namespace {

// [N] or [N, 1] -> [N]
Tensor as_vector(const Tensor& x, const char* op, const char* what) {
  MSMIX_CHECK(x.defined() && (x.dim() == 1 || (x.dim() == 2 && x.size(1) == 1)), "{}: {} must be [N] or [N, 1], got {}",
              op, what, describe(x));
  return x.dim() == 1 ? x : reshape(x, {x.size(0)});
}

// lambda [N] -> [N, 1] or [N, 1, 1]: broadcasts over the rows of a [N, d] or [N, T, d] tensor.
Tensor per_row(const Tensor& lambda, int64_t rank) {
  Shape shape(size_t(rank), 1);
  shape[0] = lambda.size(0);
  return reshape(lambda, shape);
}

}  // namespace

Tensor intensity_weights(const Tensor& intensity, float eps) {
  Tensor w = abs(as_vector(intensity, "intensity_weights", "intensity"));
  Tensor hi = max(w, {0}), lo = neg(max(neg(w), {0}));  // rank 0; ties share the grad
  return div(sub(w, lo), add(sub(hi, lo), eps));
}

MixRatios mixing_ratios(const Tensor& intensity_t, const Tensor& intensity_a, const Tensor& intensity_v,
                        const Tensor& index_i, const Tensor& index_j, const Tensor& lambda_base, float eps) {
  Tensor base = as_vector(lambda_base, "mixing_ratios", "lambda_base");
  MSMIX_CHECK(index_i.defined() && index_j.defined() && index_i.dim() == 1 && index_i.shape() == index_j.shape() &&
                  index_i.size(0) == base.size(0),
              "mixing_ratios: index_i {}, index_j {} and lambda_base {} must all be [N]", describe(index_i),
              describe(index_j), describe(lambda_base));
  auto ratio = [&](const Tensor& intensity) {
    Tensor w = intensity_weights(intensity, eps);  // [B]
    Tensor wi = index_select(w, 0, index_i), wj = index_select(w, 0, index_j);
    Tensor adapt = div(add(wi, eps), add(add(wi, wj), 2 * eps));
    return mul(add(base, adapt), 0.5f);
  };
  MixRatios r;
  r.t = ratio(intensity_t);
  r.a = ratio(intensity_a);
  r.v = ratio(intensity_v);
  r.label = mul(add(add(r.t, r.a), r.v), 1.0f / 3.0f);
  return r;
}

Tensor mix_rows(const Tensor& z, const Tensor& index_i, const Tensor& index_j, const Tensor& lambda) {
  MSMIX_CHECK(z.defined() && (z.dim() == 2 || z.dim() == 3), "mix_rows: z must be [B, d] or [B, T, d], got {}",
              describe(z));
  MSMIX_CHECK(lambda.defined() && lambda.dim() == 1 && index_i.defined() && index_j.defined() &&
                  index_i.shape() == lambda.shape() && index_j.shape() == lambda.shape(),
              "mix_rows: lambda {}, index_i {} and index_j {} must all be [N]", describe(lambda), describe(index_i),
              describe(index_j));
  Tensor lam = per_row(lambda, z.dim());
  Tensor zi = index_select(z, 0, index_i), zj = index_select(z, 0, index_j);
  return add(mul(lam, zi), mul(rsub(1.0f, lam), zj));
}

Tensor pair_mix_loss(const Tensor& prediction, const Tensor& labels_i, const Tensor& labels_j,
                     const Tensor& lambda_label) {
  Tensor pred = as_vector(prediction, "pair_mix_loss", "prediction");
  MSMIX_CHECK(labels_i.defined() && labels_j.defined() && lambda_label.defined() && labels_i.shape() == pred.shape() &&
                  labels_j.shape() == pred.shape() && lambda_label.shape() == pred.shape(),
              "pair_mix_loss: prediction {}, labels_i {}, labels_j {} and lambda {} must hold the same N",
              describe(prediction), describe(labels_i), describe(labels_j), describe(lambda_label));
  Tensor di = sub(pred, labels_i), dj = sub(pred, labels_j);
  return mean(add(mul(lambda_label, mul(di, di)), mul(rsub(1.0f, lambda_label), mul(dj, dj))));
}

Representations concat_batches(const Representations& first, const Representations& second) {
  Representations r{concat({first.t, second.t}, 0), concat({first.a, second.a}, 0), concat({first.v, second.v}, 0)};
  if (first.t_fine.defined()) {
    r.t_fine = concat({first.t_fine, second.t_fine}, 0);
    r.a_fine = concat({first.a_fine, second.a_fine}, 0);
    r.v_fine = concat({first.v_fine, second.v_fine}, 0);
  }
  r.aux_loss = first.aux_loss;  // the encoders' loss, once
  r.original_rows = first.t.size(0);
  return r;
}

// ---- Mixer

Tensor checked_labels(const std::string& who, const Representations& reps, const Tensor& labels) {
  const Tensor* zs[3] = {&reps.t, &reps.a, &reps.v};
  bool ok = labels.defined() && (labels.dim() == 1 || (labels.dim() == 2 && labels.size(1) == 1));
  for (const Tensor* z : zs) ok = ok && z->defined() && (z->dim() == 2 || z->dim() == 3);
  MSMIX_CHECK(ok,
              "{}: expected t, a, v as [B, d] or [B, T, d] and labels [B] or [B, 1], got t {}, a {}, v {}, labels {}",
              who, describe(reps.t), describe(reps.a), describe(reps.v), describe(labels));
  const int64_t B = labels.size(0);
  MSMIX_CHECK(B > 0 && reps.t.size(0) == B && reps.a.size(0) == B && reps.v.size(0) == B,
              "{}: batch sizes differ (or are 0): t {}, a {}, v {}, labels {}", who, describe(reps.t),
              describe(reps.a), describe(reps.v), describe(labels));
  return labels.dim() == 1 ? labels : reshape(labels, {B});
}

void check_draws(const std::string& who, const Tensor& draws, int64_t n, const Representations& reps) {
  MSMIX_CHECK(draws.defined() && draws.dim() == 1 && draws.size(0) == n && draws.device() == reps.t.device(),
              "{}: draws must be [{}] on {} (draw() for this batch size), got {}", who, n, reps.t.device().str(),
              describe(draws));
}

namespace {

// Fills the pair-derived fields of `r` from r.index_i, r.index_j and the lambdas already in it, and mixes.
void mix_pairs(MixResult& r, const Representations& reps) {
  r.active = true;
  r.labels_i = index_select(r.labels, 0, r.index_i);
  r.labels_j = index_select(r.labels, 0, r.index_j);
  r.mixed = {mix_rows(reps.t, r.index_i, r.index_j, r.lambda_t), mix_rows(reps.a, r.index_i, r.index_j, r.lambda_a),
             mix_rows(reps.v, r.index_i, r.index_j, r.lambda_v)};
  if (reps.t_fine.defined()) {  // the same pairs and ratios (GLoMo's local vectors)
    r.mixed.t_fine = mix_rows(reps.t_fine, r.index_i, r.index_j, r.lambda_t);
    r.mixed.a_fine = mix_rows(reps.a_fine, r.index_i, r.index_j, r.lambda_a);
    r.mixed.v_fine = mix_rows(reps.v_fine, r.index_i, r.index_j, r.lambda_v);
  }
  r.mixed_labels = add(mul(r.lambda_label, r.labels_i), mul(rsub(1.0f, r.lambda_label), r.labels_j));
}

// Mixup's draws: [0 .. B-1, a Fisher-Yates permutation, one lambda], appended to `values`.
void draw_mixup(std::vector<float>& values, int64_t B, float alpha, Generator& gen) {
  std::vector<int64_t> perm(static_cast<size_t>(B));
  std::iota(perm.begin(), perm.end(), 0);
  for (int64_t k = B - 1; k > 0; --k) std::swap(perm[k], perm[gen.randint(uint64_t(k) + 1)]);
  for (int64_t k = 0; k < B; ++k) values.push_back(float(k));
  for (int64_t k = 0; k < B; ++k) values.push_back(float(perm[size_t(k)]));
  values.push_back(gen.beta(alpha, alpha));
}

// One lambda for the batch, pairs (k, perm(k)) from Mixup's draws (at `at` in `draws`): Mixup and Manifold.
void mixup_pairs(MixResult& r, const Representations& reps, const Tensor& draws, int64_t at) {
  const int64_t B = r.labels.size(0);
  r.index_i = bounded_index(slice(draws, 0, at, at + B), B);  // the host drew them in range
  r.index_j = bounded_index(slice(draws, 0, at + B, at + 2 * B), B);
  r.lambda_base = expand(slice(draws, 0, at + 2 * B, at + 2 * B + 1), {B});
  r.lambda_t = r.lambda_a = r.lambda_v = r.lambda_label = r.lambda_base;
  mix_pairs(r, reps);
}

}  // namespace

std::vector<MixPair> host_pairs(const MixResult& r) {
  return r.active && r.index_i.defined() ? host_pairs(r.index_i, r.index_j) : std::vector<MixPair>();
}

Mixer::Mixer(const MixConfig& config_, MixMethod method) : config(config_) {
  config.method = method;  // the object decides what it is
  MSMIX_CHECK(config.alpha > 0, "{}: alpha must be > 0, got {}", name(), config.alpha);
  MSMIX_CHECK(config.eps >= 0 && config.label_scale > 0,
              "{}: eps must be >= 0 and the label scale s > 0, got {} and {}", name(), config.eps, config.label_scale);
  MSMIX_CHECK(config.mix_count >= 0, "{}: mix_count must be >= 0 (0: one mixed sample per original), got {}", name(),
              config.mix_count);
  // Only MultiMix draws its own count; elsewhere a set count would be silently ignored.
  MSMIX_CHECK(config.mix_count == 0 || method == MixMethod::MultiMix,
              "{}: mix_count={} applies to multimix only ({} mixes one sample per original)", name(), config.mix_count,
              name());
}

MixResult Mixer::mix(const Representations& reps, const Tensor& labels, Generator& gen) {
  const Tensor draws = is_training() && reps.t.defined() ? draw(reps.t.size(0), gen, reps.t.device()) : Tensor();
  return mix(reps, labels, draws);
}

Tensor Mixer::mix_loss(const Tensor& mixed_prediction, const MixResult& r) const {
  if (!r.active) return Tensor::scalar(0.0f, r.labels.defined() ? r.labels.device() : Device::cpu());
  if (r.weights.defined()) return weighted_mix_loss(mixed_prediction, r.labels, r.weights);
  return pair_mix_loss(mixed_prediction, r.labels_i, r.labels_j, r.lambda_label);
}

Tensor Mixer::alignment_loss(const MixResult& r) const {
  return Tensor::scalar(0.0f, r.labels.defined() ? r.labels.device() : Device::cpu());
}

Tensor Mixer::total_loss(const Tensor& task_loss, const Tensor& mixed_prediction, const MixResult& r) const {
  return loss_terms(task_loss, mixed_prediction, r).total;
}

Mixer::LossTerms Mixer::loss_terms(const Tensor& task_loss, const Tensor& mixed_prediction, const MixResult& r) const {
  MSMIX_CHECK(task_loss.defined() && task_loss.numel() == 1, "{}: total_loss: task loss must hold one value, got {}",
              name(), describe(task_loss));
  LossTerms t;
  if (!r.active) {
    t.total = task_loss;
    return t;
  }
  t.mix = mix_loss(mixed_prediction, r);
  t.total = add(task_loss, mul(t.mix, config.w_mix));
  if (config.method == MixMethod::MSMix) {
    t.sal = alignment_loss(r);
    t.total = add(t.total, mul(t.sal, config.w_sal));
  }
  return t;
}

Tensor Mixer::total_loss(const Tensor& prediction, const Tensor& mixed_prediction, const MixResult& r,
                         TaskLoss task) const {
  MSMIX_CHECK(r.labels.defined(), "{}: total_loss: the mix result holds no labels", name());
  Tensor pred = as_vector(prediction, "total_loss", "prediction");
  MSMIX_CHECK(pred.shape() == r.labels.shape(), "{}: total_loss: prediction {} and labels {} differ in B", name(),
              describe(prediction), describe(r.labels));
  Tensor task_loss = task == TaskLoss::L1 ? l1_loss(pred, r.labels) : mse_loss(pred, r.labels);
  return total_loss(task_loss, mixed_prediction, r);
}

NoMix::NoMix(const MixConfig& config_) : Mixer(config_, MixMethod::None) {}

Tensor NoMix::draw(int64_t, Generator&, Device) const { return Tensor(); }

MixResult NoMix::mix(const Representations& reps, const Tensor& labels, const Tensor&) {
  MixResult r;
  r.labels = checked_labels("none", reps, labels);
  return r;
}

Mixup::Mixup(const MixConfig& config_) : Mixer(config_, MixMethod::Mixup) {}

Tensor Mixup::draw(int64_t B, Generator& gen, Device device) const {
  std::vector<float> values;
  draw_mixup(values, B, config.alpha, gen);
  return Tensor::from_vector(values, {int64_t(values.size())}, device);
}

MixResult Mixup::mix(const Representations& reps, const Tensor& labels, const Tensor& draws) {
  MixResult r;
  r.labels = checked_labels("mixup", reps, labels);
  if (!is_training()) return r;
  check_draws("mixup", draws, 2 * r.labels.size(0) + 1, reps);
  r.layer = "representations";
  mixup_pairs(r, reps, draws, 0);
  return r;
}

ManifoldMixup::ManifoldMixup(const MixConfig& config_, std::vector<std::string> layers_)
    : Mixer(config_, MixMethod::Manifold), layers(std::move(layers_)) {
  MSMIX_CHECK(!layers.empty(), "manifold: no mixable layers");
  for (const std::string& layer : layers)
    MSMIX_CHECK(layer == "representations", "manifold: layer '{}' is not offered yet (only 'representations')", layer);
}

Tensor ManifoldMixup::draw(int64_t B, Generator& gen, Device device) const {
  std::vector<float> values = {float(gen.randint(layers.size()))};  // drawn even from one layer: the same stream
  draw_mixup(values, B, config.alpha, gen);
  return Tensor::from_vector(values, {int64_t(values.size())}, device);
}

MixResult ManifoldMixup::mix(const Representations& reps, const Tensor& labels, const Tensor& draws) {
  MixResult r;
  r.labels = checked_labels("manifold", reps, labels);
  if (!is_training()) return r;
  check_draws("manifold", draws, 2 * r.labels.size(0) + 2, reps);
  r.layer = layers.front();  // the only one offered; the drawn index (draws[0]) picks among more, later
  mixup_pairs(r, reps, draws, 1);
  return r;
}

MSMix::MSMix(const MixConfig& config_, int64_t dim_t, int64_t dim_a, int64_t dim_v)
    : Mixer(config_, MixMethod::MSMix), selector(config_.delta) {
  text = register_module("text", std::make_shared<IntensityPredictor>(dim_t, config.heads));
  audio = register_module("audio", std::make_shared<IntensityPredictor>(dim_a, config.heads));
  vision = register_module("vision", std::make_shared<IntensityPredictor>(dim_v, config.heads));
}

Tensor MSMix::draw(int64_t B, Generator& gen, Device device) const {
  std::vector<float> values = selection_draw_values(B, gen);  // the selection draws first
  for (int64_t k = 0; k < B; ++k) values.push_back(gen.beta(config.alpha, config.alpha));  // one per pair
  return Tensor::from_vector(values, {int64_t(values.size())}, device);
}

MixResult MSMix::mix(const Representations& reps, const Tensor& labels, const Tensor& draws) {
  MixResult r;
  r.labels = checked_labels("msmix", reps, labels);
  const char* names[3] = {"text", "audio", "vision"};
  const Tensor* zs[3] = {&reps.t, &reps.a, &reps.v};
  const IntensityPredictor* predictors[3] = {text.get(), audio.get(), vision.get()};
  for (int m = 0; m < 3; ++m)
    MSMIX_CHECK(zs[m]->size(-1) == predictors[m]->input_dim,
                "msmix: {} representation is {}, its intensity predictor was built for width {}", names[m],
                describe(*zs[m]), predictors[m]->input_dim);
  if (!is_training()) return r;
  const int64_t B = r.labels.size(0), D = cpu::kDrawParts;
  check_draws("msmix", draws, B * (D + 1), reps);

  r.layer = "representations";
  auto input = [&](const Tensor& z) { return config.center_intensity_input ? sub(z, mean(z, {0}, true)) : z; };
  r.intensity_t = text->forward(input(reps.t));  // [B] each, with grad into the predictors (and the encoders)
  r.intensity_a = audio->forward(input(reps.a));
  r.intensity_v = vision->forward(input(reps.v));
  const SelectedPairs pairs = selector.select_on_device(reps, reshape(slice(draws, 0, 0, B * D), {B, D}));
  r.index_i = pairs.index_i;
  r.index_j = pairs.index_j;
  r.selection = pairs.stats;
  r.lambda_base = slice(draws, 0, B * D, B * (D + 1));

  MixRatios ratios =
      mixing_ratios(r.intensity_t, r.intensity_a, r.intensity_v, r.index_i, r.index_j, r.lambda_base, config.eps);
  r.lambda_t = ratios.t;
  r.lambda_a = ratios.a;
  r.lambda_v = ratios.v;
  r.lambda_label = ratios.label;
  mix_pairs(r, reps);
  return r;
}

Tensor MSMix::alignment_loss(const MixResult& r) const {
  if (!r.active) return Mixer::alignment_loss(r);
  return msmix::alignment_loss(r.labels, {r.intensity_t, r.intensity_a, r.intensity_v}, config.label_scale,
                               config.sal_scale);
}

std::shared_ptr<Mixer> make_mixer(const MixConfig& config, int64_t dim_t, int64_t dim_a, int64_t dim_v) {
  switch (config.method) {
    case MixMethod::None: return std::make_shared<NoMix>(config);
    case MixMethod::Mixup: return std::make_shared<Mixup>(config);
    case MixMethod::Manifold: return std::make_shared<ManifoldMixup>(config);
    case MixMethod::MultiMix: return std::make_shared<MultiMix>(config);
    case MixMethod::MSMix: return std::make_shared<MSMix>(config, dim_t, dim_a, dim_v);
  }
  throw Error("make_mixer: unknown method");
}

}  // namespace msmix
