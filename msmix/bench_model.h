// `msmix bench`: whole training steps of one backbone, timed as the trainer runs them.
//
//   BenchOptions o;  o.model = "mult";  o.data = "synthetic:mosi";
//   BenchResult r = bench_model(o);   // r.median_ms: forward, loss, backward, clipping, optimizer step
//
// The steps are the Trainer's own (msmix/trainer.h): a Trainer is built for the run config of (model, data)
// and fit() runs one epoch over a training split of exactly (warmup + steps) batches (two batches of
// distinct samples, repeated: generating more costs time and changes no step's work); a step's time is the
// wall time between two on_step callbacks (the loader's next batch plus train_step). So nothing here
// re-implements a step, and `--mix msmix` times the mixer inside it. Two run keys differ from training:
// update_epochs is 1 (every timed step ends with an optimizer step; `--set update_epochs=8` restores MulT's
// accumulation) and the valid / test splits hold two samples (fit() scores them after the timed steps).
// With `ops`, the epoch holds as many steps again after the timed ones, run with the op profiler
// (engine/op_profile.h): where a step's time goes, by op and phase, without slowing the timed steps. With
// `trace`, the first of those steps (one more step, if not `ops`) is also kept range by range, in order.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "engine/op_profile.h"
#include "models/defaults.h"
#include "msmix/run_dir.h"

namespace msmix {

struct BenchOptions {
  std::string model, data;         // --model, --data (synthetic:NAME or an MMSA .pkl)
  std::string dataset;             // "" = guessed from the data's name
  std::string device = "cpu";      // cpu | cuda | cuda:N
  int64_t batch = 0;               // 0 = the defaults table's batch_size
  int64_t steps = 10, warmup = 2;  // timed steps, untimed steps before them
  std::string mix = "none";        // none | mixup | manifold | multimix | msmix
  uint64_t seed = 1111;
  std::vector<std::string> overrides;  // --set key=value, applied last
  bool ops = false;                    // --ops: after the timed steps, as many again with the op profiler
  bool trace = false;                  // --trace: keep the first profiled step range by range (one step, if
                                       // not --ops)
};

struct BenchResult {
  Config config;                // the run config the Trainer got
  std::vector<double> step_ms;  // every timed step, in order
  double median_ms = 0, min_ms = 0, max_ms = 0;
  double cpu_ms = 0;       // median process CPU time per step (all threads; the loader's included)
  double items_per_s = 0;  // batch / median
  double gpu_calls = 0;    // median work queued on the GPU per step (cuda::queued_count: launches, cuBLAS
                           // calls, copies, memsets); 0 on the CPU
  int64_t batch = 0, warmup = 0, threads = 0;
  int64_t trainable_params = 0;  // the backbone's
  size_t peak_bytes = 0;         // the device allocator's high-water mark of live bytes over the timed steps
  size_t base_bytes = 0;         // live bytes when the timing started (weights, optimizer state, data)
  std::vector<std::pair<std::string, Shape>> inputs;  // per-sample input shapes after MMSA's loader
  double setup_s = 0;                                 // data generation and model construction, not timed in step_ms
  std::string cuda_graph;  // with --set cuda_graph=true: Trainer::graph_status() (replays, or why none)
  // With ops: the profiled steps (engine/op_profile.h), after the timed ones.
  std::vector<OpProfile::Entry> ops;  // by self time, largest first
  int64_t ops_steps = 0;
  double ops_ms = 0;                    // wall time of the profiled steps
  double ops_ranges_ms = 0;             // of which inside the ranges (the sum of the entries' self times)
  bool ops_synchronized = false;        // on a GPU: every range waited for its kernels
  std::vector<OpProfile::Event> trace;  // with trace: the first profiled step's ranges, in opening order
};

// Runs the benchmark; `on_step(k, total, ms)` (optional) after every step, warmup ones included.
BenchResult bench_model(const BenchOptions& options,
                        const std::function<void(int64_t, int64_t, double)>& on_step = nullptr);
std::string bench_text(const BenchResult& r);                   // a few "key: value" lines (and, with ops, ops_table)
std::string ops_table(const BenchResult& r, size_t rows = 25);  // the profiled ranges, largest self time first
std::string trace_text(const BenchResult& r);                   // the traced step, indented by nesting
Json bench_json(const BenchResult& r);                          // one object; "ms_per_step" is the median

// A copy of config["data"] with the given split sizes, before prepare_data: synthetic:NAME is generated at
// exactly that size (MMSA's shapes, few samples: fast), an MMSA file's splits are cut to their first rows
// (cycled when a split is shorter). Used where only shapes matter (bench, `msmix info`).
Dataset sized_data(const Config& config, int64_t train, int64_t valid, int64_t test);

}  // namespace msmix
