// What a run shows while it trains. On a terminal: one bar redrawn in place (epoch, step, loss, items/s,
// ETA of the epoch) and a line per finished epoch. Piped into a file or another program: plain lines only,
// one per epoch and no per-step output, so logs stay readable and small.
//
//   Progress progress(std::cerr, Progress::stderr_is_terminal());
//   trainer.on_step = [&](const StepInfo& s) { progress.step(s); };
//   trainer.on_epoch = [&](const Json& line) { progress.epoch(line); };
#pragma once
#include <chrono>
#include <ostream>
#include <string>

#include "msmix/run_dir.h"
#include "msmix/trainer.h"

namespace msmix {

// "epoch 3/200 [=========>          ] 5/8 loss 0.8123 | 412 it/s | ETA 0:03" (width-independent).
std::string format_progress_bar(const StepInfo& s, double items_per_second, double eta_seconds);
// "epoch   3 | train 0.8123 | valid 0.7012 (best @ 3) | MAE 0.7012 Corr 0.5521 | lr 0.001 | 4.2 s"; with
// MS-Mix "... | lr 0.001 | fallback 35% | 4.2 s" (the share of the epoch's batches whose selection fell back).
std::string format_epoch_line(const Json& line);
// "0:03", "1:02:03"
std::string format_duration(double seconds);

class Progress {
 public:
  Progress(std::ostream& out, bool interactive);
  static bool stderr_is_terminal();

  void message(const std::string& line);  // clears a bar first
  // Interactive only: redraws the bar, at most ~10 times a second; only then is the loss read (on a GPU a
  // read waits for the step to finish).
  void step(const StepInfo& s);
  void epoch(const Json& line);           // one line per finished epoch

 private:
  void clear_bar();
  std::ostream& out_;
  bool interactive_;
  bool bar_shown_ = false;
  int64_t epoch_ = -1, items_ = 0;
  std::chrono::steady_clock::time_point epoch_start_, last_draw_;
};

}  // namespace msmix
