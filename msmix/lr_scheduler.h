// Learning-rate schedulers: they set the lr of every parameter group of an Optimizer.
//
// ReduceLROnPlateau: PyTorch 1.13's torch.optim.lr_scheduler.ReduceLROnPlateau, call for call. Call
//   step(metric) once per epoch with the validation metric; after more than `patience` epochs without an
//   improvement (beyond `threshold`), every group's lr is multiplied by `factor` (not below its min_lr), then
//   `cooldown` epochs pass in which bad epochs are not counted. MMSA's MulT uses patience 5.
// WarmupCosine: call step() after each optimizer step. The lr of step s (0-based) is base_lr * factor(s):
//   linear warmup (s + 1) / warmup_steps for s < warmup_steps, then cosine decay from 1 down to
//   min_lr_ratio, reached at s = total_steps and held after it.
// EpochSchedule: an lr that is a function of the epoch alone. Call start_epoch(e) before epoch e (1-based); every
//   group's lr becomes base_lr * factor(e). No saved state: a resumed run gets the same lr for the same epoch.
//   warmup_cosine (ALMT): (e - 1) / warmup_epochs while e <= warmup_epochs + 1 (epoch 1 trains at lr 0), then
//     (1 + cos(pi t / cosine_epochs)) / 2 with t = e - 1 - warmup_epochs (PyTorch's CosineAnnealingLR with
//     T_max = cosine_epochs and eta_min 0, taking over after the warmup).
//   multistep (GLoMo): gamma^(number of milestones m with m < e), PyTorch's MultiStepLR stepped after each epoch.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "msmix/optimizer.h"

namespace msmix {

class ReduceLROnPlateau {
 public:
  enum class Mode { Min, Max };          // whether a lower or a higher metric is better
  enum class ThresholdMode { Rel, Abs };  // improvement: beyond best * (1 -/+ threshold), or best -/+ threshold
  struct Options {
    Mode mode = Mode::Min;
    double factor = 0.1;  // new_lr = lr * factor, must be < 1
    int64_t patience = 10;
    double threshold = 1e-4;
    ThresholdMode threshold_mode = ThresholdMode::Rel;
    int64_t cooldown = 0;
    double min_lr = 0;            // for every group, unless min_lrs is given
    std::vector<double> min_lrs;  // one per group
    double eps = 1e-8;            // a reduction smaller than eps is skipped
  };
  // Everything step() reads and writes, for checkpoints (doubles: store them exactly, e.g. in JSON).
  struct State {
    double best;
    int64_t num_bad_epochs = 0, cooldown_counter = 0, last_epoch = 0;
  };

  explicit ReduceLROnPlateau(Optimizer& optimizer) : ReduceLROnPlateau(optimizer, Options()) {}
  ReduceLROnPlateau(Optimizer& optimizer, Options options);

  // Returns whether the lr was reduced at this step. A NaN metric counts as a bad epoch.
  bool step(double metric);
  bool is_better(double metric, double best) const;
  bool in_cooldown() const { return state_.cooldown_counter > 0; }
  const State& state() const { return state_; }
  void load_state(const State& state) { state_ = state; }
  const Options& options() const { return options_; }

 private:
  bool reduce_lr();
  Optimizer& optimizer_;
  Options options_;
  State state_;
};

class WarmupCosine {
 public:
  WarmupCosine(Optimizer& optimizer, int64_t warmup_steps, int64_t total_steps, double min_lr_ratio = 0);

  // The multiplier of base_lr at step s (0-based), as described at the top of this file.
  static double factor(int64_t step, int64_t warmup_steps, int64_t total_steps, double min_lr_ratio);
  void step();  // after an optimizer step: sets the lr of the next one
  int64_t next_step() const { return step_; }
  void load_state(int64_t next_step);  // resumes: the next optimizer step is number next_step
  const std::vector<float>& base_lrs() const { return base_lrs_; }

 private:
  void apply();
  Optimizer& optimizer_;
  int64_t warmup_steps_, total_steps_;
  double min_lr_ratio_;
  std::vector<float> base_lrs_;  // the groups' lrs at construction
  int64_t step_ = 0;
};

class EpochSchedule {
 public:
  using Factor = std::function<double(int64_t epoch)>;
  EpochSchedule(Optimizer& optimizer, Factor factor);

  static double warmup_cosine(int64_t epoch, int64_t warmup_epochs, int64_t cosine_epochs);
  static double multistep(int64_t epoch, const std::vector<int64_t>& milestones, double gamma);
  void start_epoch(int64_t epoch);
  const std::vector<float>& base_lrs() const { return base_lrs_; }

 private:
  Optimizer& optimizer_;
  Factor factor_;
  std::vector<float> base_lrs_;  // the groups' lrs at construction
};

}  // namespace msmix
