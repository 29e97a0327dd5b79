// `msmix compare --jobs N`: the runs a compare has planned, trained up to N at a time as `msmix train` child
// processes (msmix/child_process.h), each with OMP_NUM_THREADS = max(1, T / N) and its output in
// <run dir>/train.log; compare_command (msmix/commands.cpp) plans the runs and builds the table either way.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "msmix/commands.h"
#include "msmix/progress.h"

namespace msmix {

// One (method, seed) of a compare: its config, its folder and whether it is reused, resumed or started afresh.
struct PlannedRun {
  std::string method;
  uint64_t seed = 0;
  Config config;
  std::string dir, label;
  bool reuse = false, resume = false;
};

// Trains the runs that are not reused in up to command.jobs children at once, starting each as the sequential
// path would (fresh with --overwrite, or --resume), and checks what each child left (results.json finished,
// config.json equal to run.config, this build). Returns true when interrupted (Ctrl-C, or a child stopped by
// SIGINT): every child has been waited for and its run is resumable. A failed child stops new launches; once
// the running ones end, an Error names the first failed run in table order, its exit status and its log's tail.
bool train_in_children(const CompareCommand& command, const std::vector<PlannedRun>& runs, Progress& progress);

}  // namespace msmix
