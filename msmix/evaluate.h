// Scoring a backbone on a split under MMSA's protocol (the trainer's validation and test passes, and
// `msmix eval`): eval mode, nothing mixed, batches of config["batch_size"] in file order, MMSA's loss and metrics.
//
//   Evaluation e = evaluate(model, data.test, config, device);   // e.loss, e.metrics, e.predictions
#pragma once
#include <string>
#include <vector>

#include "data/dataset.h"
#include "engine/device.h"
#include "models/backbone.h"
#include "models/defaults.h"
#include "msmix/metrics.h"
#include "msmix/run_dir.h"

namespace msmix {

struct Batch;  // data/loader.h

struct Evaluation {
  double loss = 0;  // MMSA's "Loss": mean over batches of the batch's task loss, rounded to 4 decimals
  std::vector<float> predictions, labels;  // in split order
  std::vector<std::string> ids;            // split ids, or "0", "1", ... when the split has none
  Metrics metrics;                         // dataset_metrics for config["dataset"]
};
// Scores `split` in eval mode (nothing mixed, no dropout), batches of config["batch_size"] in file order.
Evaluation evaluate(Backbone& model, const Split& split, const Config& config, Device device);

// Metrics as a JSON object in MMSA's order; NaN (e.g. Corr of constant predictions) becomes null.
Json metrics_json(const Metrics& metrics);

// What a backbone reads of a batch: the text (BERT token ids when config["use_bert"]), audio, vision and their
// lengths.
ModelInput model_input(const Batch& batch, const Config& config);

}  // namespace msmix
