// The msmix command line (docs/training.md): `msmix train | eval | compare | bench | data | info`, each with --help.
// run_cli is main() without the process, so tests can call it with an argv and string streams; every
// failure prints "msmix: error: ..." on `err` and returns non-zero, never aborts.
//
// The subcommands are plain functions too (tests call them directly):
//   train_command    one run into a run directory (or --resume one)
//   eval_command     scores saved weights on a split; optional predictions CSV (id,label,prediction)
//   compare_command  methods x seeds, then the paper-style table (markdown, CSV) and learning curves (SVG)
//   bench_command    times whole training steps of a backbone (msmix/bench_model.h)
//   data_command     Dataset::summary() of a file or a synthetic set
#pragma once
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "msmix/bench_model.h"
#include "msmix/compare.h"
#include "msmix/progress.h"
#include "msmix/trainer.h"

namespace msmix {

int run_cli(int argc, const char* const* argv, std::ostream& out, std::ostream& err);
int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);  // args after "msmix"

struct TrainCommand {
  RunSpec spec;
  std::string out;     // run directory; "" = runs/<model>-<data>-<mix>-<seed>
  std::string resume;  // a run directory to continue (spec and out are then ignored)
  bool overwrite = false;  // start afresh in a directory that already holds a run
};
// Prints a header and the test metrics on `out`; progress on `progress`.
TrainResult train_command(const TrainCommand& command, Progress& progress, std::ostream& out);

struct EvalCommand {
  std::string model, data, dataset;  // dataset: "" = guessed from the data's name
  std::string weights;               // a safetensors file with the backbone's state dict (MMSA names)
  std::string split = "test";
  std::string predictions;           // CSV path, or "" for none
  std::string device = "auto";
  std::vector<std::string> overrides;  // --set, as in train
  bool json = false;                   // metrics as one JSON object instead of lines
};
// The config is the run's config.json when one sits beside the weights (so --set at train time carries
// over), else the defaults table. Prints the metrics on `out`.
Evaluation eval_command(const EvalCommand& command, std::ostream& out);

struct CompareCommand {
  RunSpec base;  // model, data, dataset, device, epochs, overrides (mix and seed come from below)
  std::vector<std::string> methods = {"none", "msmix"};  // methods[0] is the baseline
  std::vector<uint64_t> seeds = {1111, 1112, 1113, 1114, 1115};
  std::string out;  // "" = runs/compare-<model>-<data>
  // Runs trained at once. 1: one after another in this process. N > 1: up to N `msmix train` child processes
  // of `executable`, each with OMP_NUM_THREADS = max(1, T / N) (T: this process's omp_get_max_threads()) and
  // its output in <run dir>/train.log; the same configs, files and table as with 1.
  int jobs = 1;
  std::string executable;  // the msmix binary children run; "" = this process's own (/proc/self/exe)
};
struct CompareResult {
  std::vector<RunRecord> runs;
  Comparison comparison;
  std::string markdown;  // also in <out>/compare.md
  std::string dir;
  bool interrupted = false;
};
// Runs every (method, seed) into <out>/<method>-<seed>: a finished run with the same config is reused,
// an unfinished one resumed. Writes compare.md, compare.csv, runs.csv and curves.svg in <out>, and prints
// the table on `out`. With jobs > 1 a child that fails stops new launches; once the running ones end, an
// Error names the run, its exit status and the end of its train.log. After Ctrl-C (or a child interrupted)
// every child is waited for and `interrupted` is set.
CompareResult compare_command(const CompareCommand& command, Progress& progress, std::ostream& out);

// Dataset::summary() of synthetic:NAME or an MMSA .pkl.
std::string data_command(const std::string& data);

// Times training steps (msmix/bench_model.h): one line per step on `err`, then bench_text (or with json one
// JSON object on one line) on `out`.
BenchResult bench_command(const BenchOptions& options, bool json, std::ostream& out, std::ostream& err);

// "1111,1112" -> {1111, 1112}; "none,msmix" -> {"none", "msmix"}; errors name the flag and the bad item.
std::vector<std::string> split_list(const std::string& text, const char* flag);
std::vector<uint64_t> parse_seeds(const std::string& text);

}  // namespace msmix
