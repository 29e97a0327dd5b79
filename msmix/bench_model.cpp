#include "msmix/bench_model.h"

#include <fmt/format.h>
#include <omp.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "data/loader.h"
#include "data/synthetic.h"
#include "engine/allocator.h"
#include "engine/cuda_runtime.h"
#include "engine/error.h"
#include "msmix/info.h"
#include "msmix/trainer.h"

namespace msmix {

namespace {

using Clock = std::chrono::steady_clock;

// n rows of a split (row i is row i mod N of the original), as new tensors.
Split first_rows(const Split& s, int64_t n) {
  MSMIX_CHECK(s.size() > 0, "bench: split '{}' is empty", s.name);
  std::vector<int64_t> rows(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) rows[size_t(i)] = i % s.size();
  Batch b = gather_batch(s, rows);
  Split out;
  out.name = s.name;
  out.ids = b.ids;
  out.text = b.text;
  out.text_bert = b.text_bert;
  out.audio = b.audio;
  out.vision = b.vision;
  out.audio_lengths = b.audio_lengths;
  out.vision_lengths = b.vision_lengths;
  out.labels = b.labels;
  out.labels_t = b.labels_t;
  out.labels_a = b.labels_a;
  out.labels_v = b.labels_v;
  return out;
}

Shape per_sample(const Tensor& t) { return Shape(t.shape().begin() + 1, t.shape().end()); }

// CPU time of the whole process (every thread), in ms: less sensitive than wall time to other jobs on a
// shared machine, and equal to it for a busy single thread.
double process_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) * 1e-6;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string mib(size_t bytes) { return fmt::format("{:.1f} MiB", double(bytes) / (1024.0 * 1024.0)); }

}  // namespace

Dataset sized_data(const Config& config, int64_t train, int64_t valid, int64_t test) {
  const std::string data = config_string(config, "data");
  if (data.rfind("synthetic:", 0) == 0) {
    SyntheticOptions o;
    o.train = train;
    o.valid = valid;
    o.test = test;
    o.max_steps = config_int_or(config, "synthetic_max_steps", 0);
    o.with_text_bert = config_bool_or(config, "use_bert", false);  // token ids for a backbone's BERT
    const uint64_t seed = config.contains("synthetic_seed") ? uint64_t(config_int(config, "synthetic_seed")) : 1;
    return make_synthetic(data_name(data), seed, o).dataset;
  }
  Dataset full = load_data(config);
  Dataset out;
  out.name = full.name;
  out.source = full.source;
  out.train = first_rows(full.train, train);
  out.valid = first_rows(full.valid, valid);
  out.test = first_rows(full.test, test);
  return out;
}

BenchResult bench_model(const BenchOptions& o, const std::function<void(int64_t, int64_t, double)>& on_step) {
  MSMIX_CHECK(o.steps >= 1 && o.warmup >= 0, "bench: --steps must be >= 1 and --warmup >= 0 (got {} and {})", o.steps,
              o.warmup);
  MSMIX_CHECK(o.batch >= 0, "bench: --batch must be positive (got {})", o.batch);
  const auto setup_start = Clock::now();
  RunSpec spec;
  spec.model = o.model;
  spec.data = o.data;
  spec.dataset = o.dataset;
  spec.mix = o.mix;
  spec.seed = o.seed;
  spec.device = o.device;
  Config config = make_run_config(spec);
  // Every timed step ends with an optimizer step (MulT's table says 8: accumulation); --set may restore it.
  if (config.contains("update_epochs")) config["update_epochs"] = 1;
  apply_overrides(config, o.overrides);
  if (o.batch > 0) config["batch_size"] = o.batch;
  config["max_epochs"] = 1;  // one epoch of exactly warmup + steps batches
  config["checkpoint"] = false;
  const int64_t B = config_int(config, "batch_size"), timed_end = o.warmup + o.steps;
  const int64_t profiled = o.ops ? o.steps : o.trace ? 1 : 0;
  const int64_t total = timed_end + profiled;  // then the profiled steps
  MSMIX_CHECK(B > 0, "bench: batch size must be positive (got {})", B);

  BenchResult r;
  // Two batches of distinct samples, repeated to fill the epoch: drawing MMSA-sized features (Box-Muller
  // normals, 50k per MOSI sample) would otherwise cost more than the steps of the small backbones, and the
  // values do not change a step's work.
  Dataset data = sized_data(config, B * std::min<int64_t>(total, 2), 2, 2);
  if (total > 2) data.train = first_rows(data.train, B * total);
  prepare_data(data, config);
  r.inputs = {{"text", per_sample(data.train.text)},
              {"audio", per_sample(data.train.audio)},
              {"vision", per_sample(data.train.vision)}};
  Trainer trainer(config, data);  // no run directory: nothing written
  MSMIX_CHECK(trainer.steps_per_epoch() == total, "bench: expected {} steps in the epoch, the trainer has {}", total,
              trainer.steps_per_epoch());
  r.config = trainer.config();
  r.batch = B;
  r.warmup = o.warmup;
  r.threads = omp_get_max_threads();
  r.trainable_params = trainer.model().num_parameters(true);
  const Device device = trainer.device();

  // A step's time: from the end of the previous on_step (or the start of fit) to its own on_step. The
  // callback's own work (progress, allocator stats) is left out.
  std::vector<double> all_ms, all_cpu_ms, all_calls;
  OpProfile profile;
  Clock::time_point last, profile_start;
  double last_cpu = 0;
  int64_t last_calls = 0;
  auto mark_start = [&] {
    r.base_bytes = allocator_stats(device).in_use;
    allocator_reset_peak(device);
  };
  trainer.on_step = [&](const StepInfo& s) {
    if (device.is_cuda()) cuda::synchronize();
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - last).count();
    all_ms.push_back(ms);
    all_cpu_ms.push_back(process_cpu_ms() - last_cpu);
    all_calls.push_back(double(cuda::queued_count() - last_calls));
    if (s.step == o.warmup) mark_start();
    if (s.step == timed_end) r.peak_bytes = allocator_stats(device).peak_in_use;
    if (profiled > 0 && s.step == total) {
      profile.stop();
      r.ops_ms = std::chrono::duration<double, std::milli>(Clock::now() - profile_start).count();
    }
    if (on_step) on_step(s.step, total, ms);
    if (profiled > 0 && s.step == timed_end) {  // the next steps are profiled
      r.ops_synchronized = device.is_cuda();
      profile.start(r.ops_synchronized, o.trace ? 1 : 0);
      profile_start = Clock::now();
    }
    last_cpu = process_cpu_ms();
    last_calls = cuda::queued_count();
    last = Clock::now();
  };
  if (o.warmup == 0) mark_start();
  r.setup_s = std::chrono::duration<double>(Clock::now() - setup_start).count();
  last_calls = cuda::queued_count();
  last_cpu = process_cpu_ms();
  last = Clock::now();
  trainer.fit();  // then scores the two-sample valid and test splits, outside the timing
  r.cuda_graph = trainer.graph_status();
  MSMIX_CHECK(int64_t(all_ms.size()) == total, "bench: {} steps ran, expected {}", all_ms.size(), total);

  r.step_ms.assign(all_ms.begin() + o.warmup, all_ms.begin() + timed_end);
  r.cpu_ms = median(std::vector<double>(all_cpu_ms.begin() + o.warmup, all_cpu_ms.begin() + timed_end));
  r.gpu_calls = median(std::vector<double>(all_calls.begin() + o.warmup, all_calls.begin() + timed_end));
  if (profiled > 0) {
    r.ops = profile.entries();
    r.ops_steps = profiled;
    r.ops_ranges_ms = profile.total_ms();
    r.trace = profile.trace();
  }
  r.median_ms = median(r.step_ms);
  r.min_ms = *std::min_element(r.step_ms.begin(), r.step_ms.end());
  r.max_ms = *std::max_element(r.step_ms.begin(), r.step_ms.end());
  r.items_per_s = double(B) / (r.median_ms / 1000.0);
  return r;
}

std::string ops_table(const BenchResult& r, size_t rows) {
  const double n = double(r.ops_steps);
  std::string out = fmt::format(
      "where a step's time goes ({} more step{} with the op profiler{}; self time: a range's own, less the ranges "
      "inside it):\n",
      r.ops_steps, r.ops_steps == 1 ? "" : "s", r.ops_synchronized ? ", each range waiting for its GPU work" : "");
  out += fmt::format("  {:<16} {:<28} {:>10} {:>9} {:>6}\n", "phase", "range", "calls/step", "ms/step", "%");
  auto percent = [&](double ms) { return r.ops_ranges_ms > 0 ? 100.0 * ms / r.ops_ranges_ms : 0.0; };
  double shown = 0;
  for (size_t i = 0; i < r.ops.size() && i < rows; ++i) {
    const OpProfile::Entry& e = r.ops[i];
    shown += e.self_ms;
    out += fmt::format("  {:<16} {:<28} {:>10.4g} {:>9.3f} {:>6.1f}\n", e.phase, e.name, double(e.calls) / n,
                       e.self_ms / n, percent(e.self_ms));
  }
  if (r.ops.size() > rows)
    out += fmt::format("  {:<16} {:<28} {:>10} {:>9.3f} {:>6.1f}\n", "", fmt::format("({} more)", r.ops.size() - rows),
                       "", (r.ops_ranges_ms - shown) / n, percent(r.ops_ranges_ms - shown));
  out += fmt::format(
      "  inside ranges: {:.3f} of {:.3f} ms per step (the rest: the loader's next batch, the trainer's "
      "bookkeeping)\n",
      r.ops_ranges_ms / n, r.ops_ms / n);
  return out;
}

std::string trace_text(const BenchResult& r) {
  std::string out = fmt::format("one training step, range by range (in the order they ran; inclusive ms{}):\n",
                                r.ops_synchronized ? ", each range waiting for its GPU work" : "");
  for (const OpProfile::Event& e : r.trace)
    out += fmt::format("  {:<44} {:>9.3f}\n", std::string(size_t(2 * e.depth), ' ') + e.name, e.ms);
  return out;
}

std::string bench_text(const BenchResult& r) {
  const Config& c = r.config;
  std::string inputs;
  for (const auto& [name, shape] : r.inputs)
    inputs += fmt::format("{}{} {}", inputs.empty() ? "" : ", ", name, shape_str(shape));
  std::string out;
  out += fmt::format("bench: {} on {} ({}), mix {}, {}, {} threads, batch {}\n", config_string(c, "model"),
                     config_string(c, "data"), config_string(c, "dataset"), config_string(c, "mix"),
                     config_string(c, "device"), r.threads, r.batch);
  out += fmt::format("inputs per sample (after MMSA's loader): {}\n", inputs);
  out += fmt::format("trainable parameters: {}\n", with_commas(r.trainable_params));
  const int64_t every = config_int_or(c, "update_epochs", 1);
  out += fmt::format("training steps (forward, loss, backward, clipping, {}): {} timed after {} warm-up\n",
                     every == 1 ? "optimizer step" : fmt::format("optimizer step every {}", every), r.step_ms.size(),
                     r.warmup);
  out += fmt::format(
      "  median {:.2f} ms, min {:.2f} ms, max {:.2f} ms, {:.1f} items/s; process CPU time {:.2f} ms "
      "per step (median)\n",
      r.median_ms, r.min_ms, r.max_ms, r.items_per_s, r.cpu_ms);
  if (!r.cuda_graph.empty()) out += fmt::format("  cuda_graph: {}\n", r.cuda_graph);
  if (resolve_device(config_string(c, "device")).is_cuda())
    out += fmt::format("  gpu kernels: {}\n", gpu_kernel_choices());
  if (r.gpu_calls > 0)
    out += fmt::format("  {:.0f} kernel launches, cuBLAS calls, copies and memsets per step\n", r.gpu_calls);
  out += fmt::format("  peak memory {} live ({} before the steps: weights, optimizer state, data)\n", mib(r.peak_bytes),
                     mib(r.base_bytes));
  if (r.ops_steps > 0) out += ops_table(r);
  if (!r.trace.empty()) out += trace_text(r);
  return out;
}

Json bench_json(const BenchResult& r) {
  const Config& c = r.config;
  Json j;
  j["model"] = config_string(c, "model");
  j["data"] = config_string(c, "data");
  j["dataset"] = config_string(c, "dataset");
  j["mix"] = config_string(c, "mix");
  j["device"] = config_string(c, "device");
  if (!r.cuda_graph.empty()) j["cuda_graph"] = r.cuda_graph;
  if (resolve_device(config_string(c, "device")).is_cuda()) j["gpu_kernels"] = gpu_kernel_choices();
  j["threads"] = r.threads;
  j["batch"] = r.batch;
  j["steps"] = r.step_ms.size();
  j["warmup"] = r.warmup;
  j["update_epochs"] = config_int_or(c, "update_epochs", 1);
  j["ms_per_step"] = r.median_ms;
  j["min_ms"] = r.min_ms;
  j["max_ms"] = r.max_ms;
  j["items_per_s"] = r.items_per_s;
  j["cpu_ms_per_step"] = r.cpu_ms;
  j["gpu_calls_per_step"] = r.gpu_calls;
  j["peak_bytes"] = r.peak_bytes;
  j["base_bytes"] = r.base_bytes;
  j["trainable_params"] = r.trainable_params;
  j["inputs"] = Json::object();
  for (const auto& [name, shape] : r.inputs) j["inputs"][name] = shape;
  j["step_ms"] = r.step_ms;
  j["setup_s"] = r.setup_s;
  if (r.ops_steps > 0) {
    const double n = double(r.ops_steps);
    Json ops = Json::array();
    for (const OpProfile::Entry& e : r.ops)
      ops.push_back({{"phase", e.phase},
                     {"range", e.name},
                     {"calls_per_step", double(e.calls) / n},
                     {"self_ms_per_step", e.self_ms / n}});
    Json trace = Json::array();
    for (const OpProfile::Event& e : r.trace)
      trace.push_back({{"depth", e.depth}, {"range", e.name}, {"ms", std::isfinite(e.ms) ? Json(e.ms) : Json()}});
    if (!r.trace.empty()) j["trace"] = trace;
    j["ops"] = {{"steps", r.ops_steps},
                {"ms_per_step", r.ops_ms / n},
                {"ranges_ms_per_step", r.ops_ranges_ms / n},
                {"synchronized", r.ops_synchronized},
                {"ranges", ops}};
  }
  j["msmix_version"] = version_stamp();
  return j;
}

}  // namespace msmix
