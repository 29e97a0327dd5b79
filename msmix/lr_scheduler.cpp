#include "msmix/lr_scheduler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/error.h"

namespace msmix {

// ---------------------------------------------------------------- ReduceLROnPlateau

ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& optimizer, Options options)
    : optimizer_(optimizer), options_(std::move(options)) {
  MSMIX_CHECK(options_.factor < 1.0, "ReduceLROnPlateau: factor should be < 1.0, got {}", options_.factor);
  MSMIX_CHECK(options_.patience >= 0 && options_.cooldown >= 0,
              "ReduceLROnPlateau: patience and cooldown must be >= 0, got {} and {}", options_.patience,
              options_.cooldown);
  if (options_.min_lrs.empty()) options_.min_lrs.assign(optimizer.num_groups(), options_.min_lr);
  MSMIX_CHECK(options_.min_lrs.size() == optimizer.num_groups(),
              "ReduceLROnPlateau: expected {} min_lrs (one per parameter group), got {}", optimizer.num_groups(),
              options_.min_lrs.size());
  // The worst possible metric, so the first one is always an improvement.
  const double inf = std::numeric_limits<double>::infinity();
  state_.best = options_.mode == Mode::Min ? inf : -inf;
}

bool ReduceLROnPlateau::is_better(double metric, double best) const {
  const double t = options_.threshold;
  if (options_.mode == Mode::Min)
    return options_.threshold_mode == ThresholdMode::Rel ? metric < best * (1 - t) : metric < best - t;
  return options_.threshold_mode == ThresholdMode::Rel ? metric > best * (1 + t) : metric > best + t;
}

bool ReduceLROnPlateau::step(double metric) {
  state_.last_epoch++;
  if (is_better(metric, state_.best)) {
    state_.best = metric;
    state_.num_bad_epochs = 0;
  } else {
    state_.num_bad_epochs++;
  }
  if (in_cooldown()) {
    state_.cooldown_counter--;
    state_.num_bad_epochs = 0;  // bad epochs during the cooldown are ignored
  }
  if (state_.num_bad_epochs <= options_.patience) return false;
  bool reduced = reduce_lr();
  state_.cooldown_counter = options_.cooldown;
  state_.num_bad_epochs = 0;
  return reduced;
}

// All groups together; a group already at its min_lr (within eps) keeps its lr.
bool ReduceLROnPlateau::reduce_lr() {
  bool any = false;
  for (size_t g = 0; g < optimizer_.num_groups(); ++g) {
    double old_lr = optimizer_.lr(g);
    double new_lr = std::max(old_lr * options_.factor, options_.min_lrs[g]);
    if (old_lr - new_lr > options_.eps) {
      optimizer_.set_lr(g, float(new_lr));
      any = true;
    }
  }
  return any;
}

// ---------------------------------------------------------------- WarmupCosine

WarmupCosine::WarmupCosine(Optimizer& optimizer, int64_t warmup_steps, int64_t total_steps, double min_lr_ratio)
    : optimizer_(optimizer), warmup_steps_(warmup_steps), total_steps_(total_steps), min_lr_ratio_(min_lr_ratio) {
  MSMIX_CHECK(warmup_steps >= 0 && total_steps > 0 && warmup_steps <= total_steps,
              "WarmupCosine: need 0 <= warmup_steps <= total_steps and total_steps > 0, got warmup {} total {}",
              warmup_steps, total_steps);
  MSMIX_CHECK(min_lr_ratio >= 0 && min_lr_ratio <= 1, "WarmupCosine: min_lr_ratio must be in [0, 1], got {}",
              min_lr_ratio);
  for (size_t g = 0; g < optimizer.num_groups(); ++g) base_lrs_.push_back(optimizer.lr(g));
  apply();  // the first step's lr
}

double WarmupCosine::factor(int64_t step, int64_t warmup_steps, int64_t total_steps, double min_lr_ratio) {
  if (step < warmup_steps) return double(step + 1) / double(warmup_steps);
  if (step >= total_steps) return min_lr_ratio;
  const double pi = 3.14159265358979323846;
  double progress = double(step - warmup_steps) / double(total_steps - warmup_steps);  // [0, 1)
  return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + std::cos(pi * progress));
}

void WarmupCosine::step() {
  step_++;
  apply();
}

void WarmupCosine::load_state(int64_t next_step) {
  MSMIX_CHECK(next_step >= 0, "WarmupCosine: step must be >= 0, got {}", next_step);
  step_ = next_step;
  apply();
}

void WarmupCosine::apply() {
  double f = factor(step_, warmup_steps_, total_steps_, min_lr_ratio_);
  for (size_t g = 0; g < base_lrs_.size(); ++g) optimizer_.set_lr(g, float(base_lrs_[g] * f));
}

// ---------------------------------------------------------------- EpochSchedule

EpochSchedule::EpochSchedule(Optimizer& optimizer, Factor factor) : optimizer_(optimizer), factor_(std::move(factor)) {
  for (size_t g = 0; g < optimizer.num_groups(); ++g) base_lrs_.push_back(optimizer.lr(g));
}

double EpochSchedule::warmup_cosine(int64_t epoch, int64_t warmup_epochs, int64_t cosine_epochs) {
  MSMIX_CHECK(warmup_epochs >= 0 && cosine_epochs > 0,
              "warmup_cosine_epochs: need warmup_epochs >= 0 and cosine_epochs > 0, got {} and {}", warmup_epochs,
              cosine_epochs);
  MSMIX_CHECK(epoch >= 1, "warmup_cosine_epochs: epochs count from 1, got {}", epoch);
  if (epoch <= warmup_epochs + 1) return warmup_epochs == 0 ? 1.0 : double(epoch - 1) / double(warmup_epochs);
  const double pi = 3.14159265358979323846;
  const double t = double(epoch - 1 - warmup_epochs);
  return 0.5 * (1 + std::cos(pi * t / double(cosine_epochs)));
}

double EpochSchedule::multistep(int64_t epoch, const std::vector<int64_t>& milestones, double gamma) {
  MSMIX_CHECK(epoch >= 1, "multistep: epochs count from 1, got {}", epoch);
  double f = 1;
  for (int64_t m : milestones)
    if (m < epoch) f *= gamma;
  return f;
}

void EpochSchedule::start_epoch(int64_t epoch) {
  const double f = factor_(epoch);
  for (size_t g = 0; g < base_lrs_.size(); ++g) optimizer_.set_lr(g, float(base_lrs_[g] * f));
}

}  // namespace msmix
