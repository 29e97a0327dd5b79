// The multi-seed comparison of mixing methods (`msmix compare`): the paper-style table of test metrics
// (mean +- std over seeds per method, and each method's difference from the first, the baseline), as
// markdown and CSV, and the validation-loss learning curves as a hand-written SVG.
//
// Units follow MMSA's and the papers' tables: accuracies and F1 x100 with 2 decimals, MAE and Corr as they
// are with 4 decimals. std is the population std (numpy's np.std, as MMSA's run.py).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "msmix/metrics.h"
#include "msmix/run_dir.h"

namespace msmix {

// One finished run as the comparison sees it.
struct RunRecord {
  std::string method;               // "none", "msmix", ...
  uint64_t seed = 0;
  Metrics test;                     // MMSA's names and order
  std::vector<double> valid_loss;   // per epoch, from log.jsonl
  int64_t best_epoch = 0;
  // log.jsonl's "mix" statistics (docs/training.md), averaged over the epochs up to the best one (the
  // training that made the kept weights); empty for method none.
  std::map<std::string, double> mix;
};

struct Comparison {
  std::vector<std::string> methods;          // as given; methods[0] is the baseline
  std::vector<std::string> metrics;          // MMSA's order (from the first run)
  std::vector<int64_t> runs;                 // runs per method
  std::vector<std::vector<double>> mean, std;  // [method][metric], in display units
};

bool higher_is_better(const std::string& metric);  // false for MAE (and any *loss*)
double display_scale(const std::string& metric);   // 100 for accuracies and F1, 1 for MAE and Corr

// Groups `runs` by method (in `methods` order); a method without runs, or runs whose metric names differ,
// is an error.
Comparison summarize(const std::vector<RunRecord>& runs, const std::vector<std::string>& methods);

// | metric | none (3 seeds) | msmix (3 seeds) | msmix - none |, then one line per non-baseline method:
// "msmix - none: better on 6 of 8 metrics". Decimals as above; the difference is signed.
std::string comparison_markdown(const Comparison& c, const std::string& title);
// What the mixing did, per method (mean +- std over seeds of RunRecord::mix): candidates above delta, the
// fallback share, opposite-sign pairs, label distance, lambda^L's spread, the per-modality ratio differences
// and the intensities; "-" where a method has no such statistic. "" when no run mixed.
std::string mixing_markdown(const std::vector<RunRecord>& runs, const std::vector<std::string>& methods);
// Averages the "mix" objects of log lines 1..best_epoch (all lines when best_epoch is 0).
std::map<std::string, double> mix_summary(const std::vector<Json>& log, int64_t best_epoch);
// metric,none_mean,none_std,msmix_mean,msmix_std,msmix_minus_none (display units, full precision)
std::string comparison_csv(const Comparison& c);
// method,seed,best_epoch,<metric>... one row per run, raw metric values
std::string runs_csv(const std::vector<RunRecord>& runs);
// Validation loss per epoch: one thin line per run and a thick mean line per method (over the runs that
// reached each epoch), a dot at each run's best epoch, a legend.
std::string learning_curves_svg(const std::vector<RunRecord>& runs, const std::vector<std::string>& methods,
                                const std::string& title);

}  // namespace msmix
