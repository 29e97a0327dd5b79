#include "msmix/evaluate.h"

#include <fmt/format.h>

#include <cmath>

#include "data/loader.h"
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/profile.h"
#include "models/registry.h"
#include "ops/ops.h"

namespace msmix {

ModelInput model_input(const Batch& batch, const Config& config) {
  ModelInput in;
  in.text = config_bool_or(config, "use_bert", false) ? batch.text_bert : batch.text;
  in.audio = batch.audio;
  in.vision = batch.vision;
  in.audio_lengths = batch.audio_lengths;
  in.vision_lengths = batch.vision_lengths;
  in.text_bert = batch.text_bert;  // a handle: a backbone that reads it slices what it needs
  return in;
}

Json metrics_json(const Metrics& metrics) {
  Json j = Json::object();
  for (const auto& [name, value] : metrics) j[name] = std::isfinite(value) ? Json(value) : Json();
  return j;
}

Evaluation evaluate(Backbone& model, const Split& split, const Config& config, Device device) {
  NoGradGuard no_grad;
  ProfileRange range("evaluate");
  model.eval();
  Loader loader(split, config_int(config, "batch_size"), /*shuffle=*/false, /*seed=*/0, /*drop_last=*/false, device);
  Evaluation e;
  // Per batch, its loss, predictions and labels stay on the device: one read back at the end.
  std::vector<Tensor> losses, predictions, labels;
  Batch batch;
  while (loader.next(batch)) {
    const int64_t B = batch.size();
    Tensor pred = model.forward(model_input(batch, config)).prediction;  // [B, 1]
    losses.push_back(reshape(task_loss(config, pred, reshape(batch.labels, {B, 1})), {1}));
    predictions.push_back(reshape(pred, {B}));
    labels.push_back(reshape(batch.labels, {B}));
  }
  const size_t batches = losses.size();
  if (batches > 0) {
    std::vector<Tensor> all = losses;
    all.insert(all.end(), predictions.begin(), predictions.end());
    all.insert(all.end(), labels.begin(), labels.end());
    const std::vector<float> host = concat(all, 0).to_vector();  // [batches + N + N]
    const size_t n = (host.size() - batches) / 2;
    double loss_sum = 0;  // MMSA: the mean of the per-batch losses, summed in batch order
    for (size_t k = 0; k < batches; ++k) loss_sum += host[k];
    e.loss = round4(loss_sum / double(batches));
    e.predictions.assign(host.begin() + long(batches), host.begin() + long(batches + n));
    e.labels.assign(host.begin() + long(batches + n), host.end());
  } else {
    e.loss = NAN;
  }
  for (int64_t i = 0; i < split.size(); ++i)
    e.ids.push_back(split.ids.empty() ? std::to_string(i) : split.ids[size_t(i)]);
  for (size_t i = 0; i < e.predictions.size(); ++i) {
    const float p = e.predictions[i];
    if (std::isfinite(p)) continue;
    const std::string bad = non_finite_inputs(split, int64_t(i));  // the sample's own inputs, the likelier cause
    throw Error(fmt::format("evaluate: the model predicts {} for sample '{}' (row {} of {}); {}",
                            std::isnan(p) ? std::string("nan") : fmt::format("{}", p), e.ids[i], i,
                            e.predictions.size(),
                            bad.empty() ? "its inputs are finite, so the model's weights or activations are not"
                                        : "its inputs hold non-finite values (" + bad +
                                              "): clean the file's features"));
  }
  if (!e.predictions.empty()) e.metrics = dataset_metrics(config_string(config, "dataset"), e.predictions, e.labels);
  return e;
}

}  // namespace msmix
