// Training under MMSA's protocol (shared/spec/mmsa.md, "Training protocol"), with or without mixing:
//
//   Config config = make_run_config(spec);            // defaults table + run keys + --set overrides
//   Dataset data = load_data(config);                 // synthetic:NAME or an MMSA .pkl
//   prepare_data(data, config);                       // MMSA's loader behaviour; feature_dims from the data
//   Trainer trainer(config, data, "runs/tfn-msmix");  // "" keeps everything in memory
//   TrainResult r = trainer.fit();                    // r.test: MMSA's metrics of the best weights
//
// One epoch: every training batch once (shuffled per (seed, epoch)); per batch
//   reps = encode(batch); mix = mixer.mix(reps, labels)            (nothing mixed for "none")
//   out = fuse(concat(reps, mix.reps))                             (one fuse of [2B], originals first)
//   L = L_task(out[:B], y) + 0.7 L_mix(out[B:]) + 0.5 L_SAL         (shared/spec/msmix.md)
// then backward, clipping (by value: grad_clip > 0, by norm: grad_clip_norm > 0) and an optimizer step every
// update_epochs batches (MMSA's gradient accumulation: grads summed, and a last incomplete group dropped).
// After each epoch the validation set is scored with the backbone's own task loss (MMSA: the mean of the
// batch means, rounded to 4 decimals); the epoch with the lowest loss (an improvement of at least 1e-6)
// keeps its weights; early_stop epochs without one end the run. The best weights are reloaded and the test
// set is scored once.
//
// Reproducibility: three Philox streams keyed by the seed (init, then dropout, and mixing) and the loader's
// (seed, epoch) order, so the same config on the same device gives bit-identical losses; the resume point
// written at each epoch end (model, mixer, optimizer, scheduler, RNG offsets, best loss) makes a resumed run
// continue with the numbers of the uninterrupted one.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "engine/device.h"
#include "engine/random.h"
#include "models/backbone.h"
#include "models/defaults.h"
#include "msmix/evaluate.h"
#include "msmix/lr_scheduler.h"
#include "msmix/metrics.h"
#include "msmix/mix_stats.h"
#include "msmix/mixing.h"
#include "msmix/optimizer.h"
#include "msmix/run_config.h"
#include "msmix/run_dir.h"

namespace msmix {

struct Batch;       // data/loader.h
class GraphStep;    // msmix/graph_step.h

// "0.1.0 (abc1234)": the version and git revision config.json records as msmix_version.
std::string version_stamp();
// "" when <dir>/config.json holds `config`, written by this build (what reusing or resuming a run needs), else
// what differs: config.json missing, another build's version stamp, or another config.
std::string saved_config_mismatch(const std::string& dir, const Config& config);

// ---- Ctrl-C: the handler sets a flag that the trainer reads after each step

void install_interrupt_handler();  // SIGINT -> request_stop(); a second Ctrl-C kills as usual
void request_stop();
bool stop_requested();
void clear_stop_request();

// ---- the trainer

struct StepInfo {
  int64_t epoch = 0, max_epochs = 0;  // epoch counts from 1
  int64_t step = 0, steps = 0;        // step of this epoch (from 1) and steps per epoch
  int64_t items = 0;                  // samples in this batch
  Tensor loss;                        // [] the batch's total loss, on the training device
  // Reads the loss to the host: on a GPU that waits for the step to finish (progress bars read it only when
  // they redraw).
  double loss_value() const { return loss.item(); }
};

struct TrainResult {
  std::string status;  // "finished" or "interrupted"
  std::string stop_reason;  // "early_stop", "max_epochs" or "interrupted"
  int64_t epochs = 0;       // epochs finished
  int64_t best_epoch = 0;
  double best_valid_loss = 0;
  Metrics test;             // empty unless finished
  std::vector<Json> log;    // the log lines, one per finished epoch
  Json results;             // what results.json holds
};

class Trainer {
 public:
  // config: make_run_config + prepare_data; data: prepared. run_dir "" writes nothing.
  Trainer(Config config, const Dataset& data, std::string run_dir = "");
  ~Trainer();

  // Loads the resume point of run_dir (its config must equal this one). Call before fit().
  void resume();
  // Trains until early stop, max_epochs or Ctrl-C, then scores the test split with the best weights.
  // A non-finite loss throws an Error naming the epoch and step (results.json says "failed").
  TrainResult fit();

  std::function<void(const StepInfo&)> on_step;   // after every step (progress bars)
  std::function<void(const Json&)> on_epoch;      // after each epoch's log line is written

  // cuda_graph: how many steps ran as replays of the captured graph (0 otherwise), and what results.json
  // says of it ("" when cuda_graph is off): how many steps replayed it, or why it was not used.
  int64_t graph_replays() const;
  std::string graph_status() const;

  Backbone& model() { return *model_; }
  Mixer& mixer() { return *mixer_; }
  Optimizer& optimizer() { return *optimizer_; }
  const Config& config() const { return config_; }
  Device device() const { return device_; }
  int64_t steps_per_epoch() const;

 private:
  struct EpochSums;
  void build();
  Tensor train_step(const Batch& batch, EpochSums& sums);  // the step's total loss [], left on the device
  Tensor forward_backward(const Batch& batch, const Tensor& draws, MixResult& mix, Tensor* total = nullptr);
  std::vector<Tensor> trained_parameters() const;
  void read_epoch_sums(EpochSums& sums, int64_t epoch, int64_t steps);
  void save_resume_point(int64_t epoch);
  Json epoch_state(int64_t epoch) const;
  void keep_best(int64_t epoch, double valid_loss);
  [[noreturn]] void fail(const std::string& message);
  Evaluation score(const std::string& split, const std::string& when);  // evaluate, its errors through fail()
  std::string last_checkpoint_note() const;
  // What a non-finite loss error adds: the split's inputs hold NaN or inf, or else the model diverged.
  std::string non_finite_loss_cause(const std::string& split) const;

  Config config_;
  Dataset data_;
  std::string run_dir_;
  Device device_;
  std::shared_ptr<Backbone> model_;
  std::shared_ptr<Mixer> mixer_;
  std::vector<std::string> group_names_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<ReduceLROnPlateau> scheduler_;
  std::unique_ptr<EpochSchedule> epoch_schedule_;  // set at each epoch's start (warmup_cosine_epochs, multistep)
  Generator mix_gen_;
  std::unique_ptr<GraphStep> graph_;  // cuda_graph on the GPU
  int64_t graph_steps_ = 0;           // full-size steps so far (the first runs uncaptured)
  std::string graph_note_;            // why the capture failed, when it did
  PendingMixStep graph_mixing_;       // the captured step's mixing statistics (their values: a graph output)

  int64_t epochs_done_ = 0, best_epoch_ = 0, left_in_group_ = 0;
  double best_valid_loss_ = 1e8;  // MMSA's starting value for a loss
  std::map<std::string, Tensor> best_state_;
  std::vector<Json> log_;
  bool resumed_ = false;
};

}  // namespace msmix
