#include "msmix/commands.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>

#include "data/synthetic.h"
#include "engine/error.h"
#include "models/checkpoint_io.h"
#include "models/registry.h"
#include "msmix/bench_model.h"
#include "msmix/compare_children.h"
#include "msmix/data_command.h"
#include "msmix/info.h"

namespace msmix {

namespace fs = std::filesystem;

namespace {

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string quoted = "\"";
  for (char c : s) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

void print_metrics(std::ostream& out, const Metrics& metrics) {
  for (const auto& [name, value] : metrics) out << fmt::format("  {:<14} {:.4f}\n", name, value);
}

// Trains one config into `dir`, resuming it when asked; wires the progress display.
TrainResult run_training(Config config, Dataset& data, const std::string& dir, bool resume, Progress& progress) {
  prepare_data(data, config);
  Trainer trainer(config, data, dir);
  if (resume) trainer.resume();
  trainer.on_step = [&](const StepInfo& s) { progress.step(s); };
  trainer.on_epoch = [&](const Json& line) { progress.epoch(line); };
  return trainer.fit();
}

std::string run_title(const Config& c) {
  return fmt::format("{} | {} ({}) | mix {} | seed {} | {} | batch {} | max {} epochs, early stop {}{}",
                     config_string(c, "model"), config_string(c, "data"), config_string(c, "dataset"),
                     config_string(c, "mix"), config_int(c, "seed"), config_string(c, "device"),
                     config_int(c, "batch_size"), config_int(c, "max_epochs"), config_int(c, "early_stop"),
                     c.contains("weights") ? " | weights " + config_string(c, "weights") : std::string());
}

}  // namespace

// ---------------------------------------------------------------- train

TrainResult train_command(const TrainCommand& command, Progress& progress, std::ostream& out) {
  Config config;
  std::string dir = command.resume;
  if (!dir.empty()) {
    RunDir run(dir);
    MSMIX_CHECK(run.has(kConfigFile), "--resume '{}': no {} there (not a run directory)", dir, kConfigFile);
    config = saved_config(run.path());
  } else {
    config = make_run_config(command.spec);
    dir = !command.out.empty() ? command.out
                               : fmt::format("runs/{}-{}-{}-{}", command.spec.model, data_name(command.spec.data),
                                             command.spec.mix, command.spec.seed);
    MSMIX_CHECK(command.overwrite || !RunDir(dir).has(kConfigFile),
                "run directory '{}' already holds a run; continue it with --resume {}, or pass --overwrite", dir, dir);
  }
  Dataset data = load_data(config);
  progress.message(fmt::format("{}{} -> {}", command.resume.empty() ? "" : "resuming ", run_title(config), dir));
  TrainResult r = run_training(config, data, dir, !command.resume.empty(), progress);
  if (r.status == "interrupted") {
    out << fmt::format("interrupted after epoch {}; continue with: msmix train --resume {}\n", r.epochs, dir);
    return r;
  }
  out << fmt::format("{} after {} epochs; best epoch {} (valid loss {:.4f}); test metrics:\n", r.stop_reason, r.epochs,
                     r.best_epoch, r.best_valid_loss);
  print_metrics(out, r.test);
  out << fmt::format("run directory: {}\n", dir);
  return r;
}

// ---------------------------------------------------------------- eval

Evaluation eval_command(const EvalCommand& command, std::ostream& out) {
  MSMIX_CHECK(!command.weights.empty(), "eval: --weights FILE is required");
  std::error_code ec;
  MSMIX_CHECK(fs::is_regular_file(command.weights, ec), "eval: --weights '{}': no such file", command.weights);
  RunDir beside(fs::path(command.weights).has_parent_path() ? fs::path(command.weights).parent_path().string() : ".");
  Config config;
  RunSpec spec;
  spec.model = command.model;
  spec.data = command.data;
  spec.dataset = command.dataset;
  spec.device = command.device;
  if (beside.has(kConfigFile)) {  // the run's own config: its --set values shape the model
    config = saved_config(beside.path());
    MSMIX_CHECK(command.model.empty() || config_string(config, "model") == command.model,
                "eval: --model {} but {} was trained as {}", command.model, beside.file(kConfigFile),
                config_string(config, "model"));
    // The data may differ from the training run's: take its synthetic keys from a fresh config.
    Config fresh = make_run_config([&] {
      RunSpec s = spec;
      s.model = config_string(config, "model");
      s.dataset = command.dataset.empty() ? config_string(config, "dataset") : command.dataset;
      return s;
    }());
    config["device"] = fresh["device"];
    if (config_string(config, "data") != command.data) {
      for (const char* key : {"synthetic_seed", "synthetic_scale", "synthetic_max_steps"}) config.erase(key);
      for (const char* key : {"data", "dataset", "synthetic_seed", "synthetic_scale", "synthetic_max_steps"})
        if (fresh.contains(key)) config[key] = fresh[key];
    }
    apply_overrides(config, command.overrides);
  } else {
    MSMIX_CHECK(!command.model.empty(), "eval: --model is required (no config.json beside {})", command.weights);
    spec.overrides = command.overrides;
    config = make_run_config(spec);
  }
  Dataset data = load_data(config);
  prepare_data(data, config);
  auto model = make_backbone(config_string(config, "model"), config_feature_dims(config), config);
  const Device device = resolve_device(config_string(config, "device"));
  model->to(device);
  load_into(*model, command.weights);
  Evaluation e = evaluate(*model, data.split(command.split), config, device);

  if (!command.predictions.empty()) {
    std::string csv = "id,label,prediction\n";
    for (size_t i = 0; i < e.predictions.size(); ++i)
      csv += fmt::format("{},{},{}\n", csv_field(e.ids[i]), e.labels[i], e.predictions[i]);
    write_file_atomic(command.predictions, csv);
  }
  if (command.json) {
    Json j = metrics_json(e.metrics);
    j["Loss"] = e.loss;
    out << j.dump() << "\n";
  } else {
    out << fmt::format("{} on {} split '{}' ({} samples), weights {}:\n", config_string(config, "model"),
                       config_string(config, "data"), command.split, e.predictions.size(), command.weights);
    print_metrics(out, e.metrics);
    out << fmt::format("  {:<14} {:.4f}\n", "Loss", e.loss);
    if (!command.predictions.empty()) out << fmt::format("predictions: {}\n", command.predictions);
  }
  return e;
}

// ---------------------------------------------------------------- compare

namespace {

// Decides what happens to one run. Reused or resumed only when config.json matches this config and this
// build (msmix_version).
PlannedRun plan_run(const RunSpec& base, const std::string& method, uint64_t seed, Dataset& data, bool& loaded,
                    const RunDir& root) {
  PlannedRun run;
  run.method = method;
  run.seed = seed;
  RunSpec spec = base;
  spec.mix = method;
  spec.seed = seed;
  run.config = make_run_config(spec);
  if (!loaded) data = load_data(run.config), loaded = true;  // the same data for every run
  prepare_data(data, run.config);
  run.dir = root.file(fmt::format("{}-{}", method, seed));
  RunDir dir(run.dir);
  const bool same = saved_config_mismatch(run.dir, run.config).empty();
  run.reuse = same && dir.has(kResultsFile) && dir.read_results()["status"] == "finished";
  run.resume = !run.reuse && same && dir.has(kLastCheckpointFile);
  return run;
}

// What the table needs from a finished run: its test metrics (results.json) and its curves (log.jsonl).
RunRecord read_record(const PlannedRun& run, const Json& results) {
  RunRecord record;
  record.method = run.method;
  record.seed = run.seed;
  record.best_epoch = results.value("best_epoch", int64_t(0));
  for (auto it = results["test"].begin(); it != results["test"].end(); ++it)
    record.test.emplace_back(it.key(), it.value().is_number() ? it.value().get<double>() : NAN);
  const std::vector<Json> log = RunDir(run.dir).read_log();
  for (const Json& line : log) {
    const auto loss = line.find("valid_loss");  // null when the loss was NaN
    record.valid_loss.push_back(loss != line.end() && loss->is_number() ? loss->get<double>() : NAN);
  }
  record.mix = mix_summary(log, record.best_epoch);
  return record;
}

}  // namespace

CompareResult compare_command(const CompareCommand& command, Progress& progress, std::ostream& out) {
  MSMIX_CHECK(command.jobs >= 1, "compare: --jobs must be at least 1 (got {})", command.jobs);
  MSMIX_CHECK(!command.methods.empty() && !command.seeds.empty(), "compare: --mix and --seeds must not be empty");
  for (const std::string& m : command.methods) parse_mix_method(m);
  CompareResult result;
  result.dir = !command.out.empty()
                   ? command.out
                   : fmt::format("runs/compare-{}-{}", command.base.model, data_name(command.base.data));
  RunDir root(result.dir);
  root.create();

  // Every run's config and fate first (method, then seed: the table's order), then the training.
  Dataset data;
  bool loaded = false;
  std::vector<PlannedRun> runs;
  for (const std::string& method : command.methods)
    for (uint64_t seed : command.seeds) runs.push_back(plan_run(command.base, method, seed, data, loaded, root));
  for (size_t i = 0; i < runs.size(); ++i)
    runs[i].label = fmt::format("[{}/{}] {}", i + 1, runs.size(), run_title(runs[i].config));

  if (command.jobs == 1) {
    for (const PlannedRun& run : runs) {
      Json results;
      if (run.reuse) {
        progress.message(run.label + " -> reusing " + run.dir);
        results = RunDir(run.dir).read_results();
      } else {
        progress.message(run.label + (run.resume ? " -> resuming " : " -> ") + run.dir);
        TrainResult r = run_training(run.config, data, run.dir, run.resume, progress);
        if (r.status == "interrupted") {
          result.interrupted = true;
          out << fmt::format("compare interrupted during {} seed {}; rerun the same command to continue\n", run.method,
                             run.seed);
          return result;
        }
        results = r.results;
      }
      result.runs.push_back(read_record(run, results));
    }
  } else {
    if (train_in_children(command, runs, progress)) {
      result.interrupted = true;
      out << "compare interrupted; rerun the same command to continue\n";
      return result;
    }
    for (const PlannedRun& run : runs) result.runs.push_back(read_record(run, RunDir(run.dir).read_results()));
  }

  result.comparison = summarize(result.runs, command.methods);
  const std::string& spec = command.base.data;
  const std::string data_label = spec.rfind("synthetic:", 0) == 0 ? spec : data_name(spec);
  const std::string title =
      fmt::format("{} on {}, seeds {}", command.base.model, data_label, fmt::join(command.seeds, ","));
  result.markdown = comparison_markdown(result.comparison, title);
  const std::string mixing = mixing_markdown(result.runs, command.methods);
  if (!mixing.empty()) result.markdown += "\n" + mixing;
  write_file_atomic(root.file("compare.md"), result.markdown);
  write_file_atomic(root.file("compare.csv"), comparison_csv(result.comparison));
  write_file_atomic(root.file("runs.csv"), runs_csv(result.runs));
  write_file_atomic(root.file("curves.svg"), learning_curves_svg(result.runs, command.methods,
                                                                 "validation loss: " + title));
  out << "\n" << result.markdown << "\n";
  out << fmt::format("written: {0}/compare.md, {0}/compare.csv, {0}/runs.csv, {0}/curves.svg\n", result.dir);
  return result;
}

// ---------------------------------------------------------------- data

std::string data_command(const std::string& data) {
  Config c = {{"data", data}, {"synthetic_seed", 1}, {"synthetic_scale", 1.0}, {"synthetic_max_steps", 0}};
  Dataset d = load_data(c);
  return d.summary();
}

// ---------------------------------------------------------------- bench

BenchResult bench_command(const BenchOptions& options, bool json, std::ostream& out, std::ostream& err) {
  BenchResult r = bench_model(options, [&](int64_t step, int64_t total, double ms) {
    err << fmt::format("step {}/{}: {:.1f} ms{}\n", step, total, ms, step <= options.warmup ? " (warm-up)" : "");
    err.flush();
  });
  out << (json ? bench_json(r).dump() + "\n" : bench_text(r));
  return r;
}

// ---------------------------------------------------------------- parsing helpers

std::vector<std::string> split_list(const std::string& text, const char* flag) {
  std::vector<std::string> items;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(start, comma - start);
    MSMIX_CHECK(!item.empty(), "{}: empty item in '{}'", flag, text);
    items.push_back(item);
    start = comma + 1;
  }
  return items;
}

std::vector<uint64_t> parse_seeds(const std::string& text) {
  std::vector<uint64_t> seeds;
  for (const std::string& item : split_list(text, "--seeds")) {
    size_t used = 0;
    uint64_t seed = 0;
    try {
      seed = std::stoull(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    MSMIX_CHECK(used == item.size() && item[0] != '-', "--seeds: '{}' is not a non-negative integer", item);
    seeds.push_back(seed);
  }
  return seeds;
}

namespace {
// For counts where 0 or less would mean nothing (--epochs, --jobs): a bad count is a bad command line (exit 2,
// naming the flag), never a silent default. A non-number is CLI11's own error.
CLI::Validator at_least_one() {
  return CLI::Validator(
      [](std::string& value) {
        try {
          return std::stoll(value) >= 1 ? std::string() : "must be at least 1 (got " + value + ")";
        } catch (const std::exception&) {
          return std::string();
        }
      },
      "N >= 1");
}
}  // namespace

// ---------------------------------------------------------------- the command line

int run_cli(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  CLI::App app{"msmix: multimodal sentiment analysis with MS-Mix, from scratch in C++/CUDA"};
  app.name("msmix");
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(MSMIX_VERSION));

  std::string info_model, info_data, info_dataset;
  std::vector<std::string> info_overrides;
  CLI::App* info = app.add_subcommand(
      "info", "print version, build flags, threads, BLAS, CUDA and GPUs; with --model and --data, the parameter table");
  info->add_option("--model", info_model, "backbone whose parameters to list");
  info->add_option("--data", info_data, "an MMSA feature file (*.pkl) or synthetic:NAME (gives the input widths)");
  info->add_option("--dataset", info_dataset, "mosi | mosei | sims (default: from the data's name)");
  info->add_option("--set", info_overrides, "key=value overrides of the config (repeatable)");

  TrainCommand train;
  train.spec.model = train.spec.data = "";  // required unless --resume
  std::string train_mix = "none";
  CLI::App* train_app = app.add_subcommand("train", "train one backbone with or without mixing (MMSA's protocol)");
  train_app->add_option("--model", train.spec.model,
                        "backbone: " + fmt::format("{}", fmt::join(known_backbones(), ", ")));
  train_app->add_option("--data", train.spec.data, "an MMSA feature file (*.pkl) or synthetic:NAME");
  train_app->add_option("--dataset", train.spec.dataset,
                        "mosi | mosei | sims: defaults and metrics (default: from the data's name)");
  train_app->add_option("--mix", train_mix, "none | mixup | manifold | multimix | msmix")->capture_default_str();
  train_app->add_option("--seed", train.spec.seed, "seed of init, dropout, shuffling and mixing")
      ->capture_default_str();
  train_app->add_option("--device", train.spec.device, "auto | cpu | cuda | cuda:N")->capture_default_str();
  train_app->add_option("--out", train.out, "run directory (default runs/<model>-<data>-<mix>-<seed>)");
  train_app->add_option("--epochs", train.spec.max_epochs, "maximum epochs (default: the defaults table's max_epochs)")
      ->check(at_least_one());
  train_app->add_option("--set", train.spec.overrides, "key=value overrides of the run config (repeatable)");
  train_app->add_option("--weights", train.spec.weights,
                        "start the backbone from this safetensors state dict (names must match exactly)");
  train_app->add_option("--resume", train.resume, "continue the run in this directory");
  train_app->add_flag("--overwrite", train.overwrite, "start afresh in a directory that already holds a run");

  EvalCommand eval;
  CLI::App* eval_app = app.add_subcommand("eval", "score saved weights on a split with MMSA's metrics");
  eval_app->add_option("--model", eval.model, "backbone (default: from config.json beside the weights)");
  eval_app->add_option("--data", eval.data, "an MMSA feature file (*.pkl) or synthetic:NAME")->required();
  eval_app->add_option("--dataset", eval.dataset, "mosi | mosei | sims (default: from the data's name)");
  eval_app->add_option("--weights", eval.weights, "safetensors file with the backbone's state dict")->required();
  eval_app->add_option("--split", eval.split, "train | valid | test")->capture_default_str();
  eval_app->add_option("--predictions", eval.predictions, "write id,label,prediction rows to this CSV");
  eval_app->add_option("--device", eval.device, "auto | cpu | cuda | cuda:N")->capture_default_str();
  eval_app->add_option("--set", eval.overrides, "key=value config overrides (repeatable)");
  eval_app->add_flag("--json", eval.json, "print the metrics as one JSON object");

  CompareCommand compare;
  std::string compare_mix = "none,msmix", compare_seeds = "1111,1112,1113,1114,1115";
  CLI::App* compare_app = app.add_subcommand("compare", "train methods x seeds and print the paper-style table");
  compare_app->add_option("--model", compare.base.model, "backbone")->required();
  compare_app->add_option("--data", compare.base.data, "an MMSA feature file (*.pkl) or synthetic:NAME")->required();
  compare_app->add_option("--dataset", compare.base.dataset, "mosi | mosei | sims (default: from the data's name)");
  compare_app->add_option("--mix", compare_mix, "comma-separated methods; the first is the baseline")
      ->capture_default_str();
  compare_app->add_option("--seeds", compare_seeds, "comma-separated seeds")->capture_default_str();
  compare_app->add_option("--device", compare.base.device, "auto | cpu | cuda | cuda:N")->capture_default_str();
  compare_app->add_option("--epochs", compare.base.max_epochs, "maximum epochs per run")->check(at_least_one());
  compare_app->add_option("--set", compare.base.overrides, "key=value overrides for every run (repeatable)");
  compare_app->add_option("--out", compare.out, "output folder (default runs/compare-<model>-<data>)");
  compare_app->add_option("--jobs", compare.jobs,
                          "runs trained at once: 1 = one after another in this process; N > 1 = up to N `msmix "
                          "train` child processes, each with OMP_NUM_THREADS = max(1, threads / N) and its "
                          "output in <run dir>/train.log")
      ->capture_default_str()
      ->check(at_least_one());

  BenchOptions bench;
  bool bench_as_json = false;
  CLI::App* bench_app = app.add_subcommand("bench", "time whole training steps of a backbone on the data's shapes");
  bench_app->add_option("--model", bench.model, "backbone")->required();
  bench_app->add_option("--data", bench.data, "an MMSA feature file (*.pkl) or synthetic:NAME")->required();
  bench_app->add_option("--dataset", bench.dataset, "mosi | mosei | sims (default: from the data's name)");
  bench_app->add_option("--device", bench.device, "cpu | cuda | cuda:N")->capture_default_str();
  bench_app->add_option("--batch", bench.batch, "batch size (default: the defaults table's)");
  bench_app->add_option("--steps", bench.steps, "timed steps")->capture_default_str();
  bench_app->add_option("--warmup", bench.warmup, "untimed steps first")->capture_default_str();
  bench_app->add_option("--mix", bench.mix, "none | mixup | manifold | multimix | msmix")->capture_default_str();
  bench_app->add_option("--seed", bench.seed, "seed of init, dropout and data")->capture_default_str();
  bench_app->add_option("--set", bench.overrides, "key=value overrides of the run config (repeatable)");
  bench_app->add_flag("--json", bench_as_json, "print one JSON object (ms_per_step: the median)");
  bench_app->add_flag("--ops", bench.ops,
                      "then as many steps again with the op profiler: self time per op and phase (on a GPU each "
                      "range waits for its kernels)");
  bench_app->add_flag("--trace", bench.trace,
                      "then print one profiled step range by range: every op and autograd node in the order they "
                      "ran, nested, with their times");

  std::string data_spec, data_synth_name, data_write;
  DataSpecOptions data_options;
  CLI::App* data_app = app.add_subcommand(
      "data", "print a dataset summary (splits, shapes, labels, padding), or write it as an MMSA .pkl (--write)");
  data_app->add_option("data", data_spec, "an MMSA feature file (*.pkl), synthetic:NAME, or synth NAME")->required();
  data_app->add_option("name", data_synth_name, "after 'synth': mosi, mosei, sims, mosi-aligned, mosei-aligned");
  data_app->add_option("--write", data_write,
                       "write the dataset to this MMSA feature file (.pkl) instead of summarising it");
  data_app->add_option("--seed", data_options.seed, "synthetic data: the generator's seed")->capture_default_str();
  data_app->add_option("--scale", data_options.scale, "synthetic data: multiplies the split sizes (256 / 64 / 128)")
      ->capture_default_str();
  data_app
      ->add_option("--max-steps", data_options.max_steps,
                   "synthetic data: cut every sequence to this many steps (0: no cut)")
      ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e, out, err);  // --help, --version
  } catch (const CLI::ParseError& e) {
    err << "msmix: error: " << e.what() << "\n";
    CLI::App* sub = app.get_subcommands().empty() ? nullptr : app.get_subcommands().front();
    err << fmt::format("run 'msmix{} --help' for usage\n", sub ? " " + sub->get_name() : "");
    return 2;
  }

  try {
    Progress progress(err, &err == &std::cerr && Progress::stderr_is_terminal());
    if (*info) {
      const bool table = !info_model.empty() || !info_data.empty() || !info_dataset.empty() || !info_overrides.empty();
      MSMIX_CHECK(!table || (!info_model.empty() && !info_data.empty()),
                  "info: the parameter table needs both --model and --data");
      out << (table ? model_info(info_model, info_data, info_dataset, info_overrides) : build_info());
    } else if (*train_app) {
      MSMIX_CHECK(!train.resume.empty() || (!train.spec.model.empty() && !train.spec.data.empty()),
                  "train: --model and --data are required (or --resume DIR)");
      MSMIX_CHECK(train.resume.empty() || (train.spec.model.empty() && train.spec.data.empty() &&
                                           train.spec.overrides.empty() && train.spec.max_epochs == 0 &&
                                           train.spec.weights.empty()),
                  "train --resume {} continues the saved config.json: drop --model, --data, --set, --epochs and "
                  "--weights",
                  train.resume);
      train.spec.mix = train_mix;
      if (train.resume.empty()) parse_mix_method(train_mix);
      if (&err == &std::cerr) install_interrupt_handler();
      TrainResult r = train_command(train, progress, out);
      if (r.status == "interrupted") return 130;
    } else if (*eval_app) {
      eval_command(eval, out);
    } else if (*compare_app) {
      compare.methods = split_list(compare_mix, "--mix");
      compare.seeds = parse_seeds(compare_seeds);
      if (&err == &std::cerr) install_interrupt_handler();
      if (compare_command(compare, progress, out).interrupted) return 130;
    } else if (*bench_app) {
      parse_mix_method(bench.mix);
      bench_command(bench, bench_as_json, out, err);
    } else if (*data_app) {
      // `msmix data synth NAME` is `msmix data synthetic:NAME` (the spelling; NAME defaults to mosi).
      if (data_spec == "synth") data_spec = "synthetic:" + (data_synth_name.empty() ? "mosi" : data_synth_name);
      else
        MSMIX_CHECK(data_synth_name.empty(), "data: unexpected argument '{}' after '{}' (only 'synth NAME' takes two)",
                    data_synth_name, data_spec);
      out << (data_write.empty() ? (data_options.is_default() ? data_command(data_spec)
                                                              : load_data_spec(data_spec, data_options).summary())
                                 : data_write_command(data_spec, data_write, data_options) + "\n");
    }
  } catch (const std::exception& e) {
    err << "msmix: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::vector<const char*> argv = {"msmix"};
  for (const std::string& a : args) argv.push_back(a.c_str());
  return run_cli(int(argv.size()), argv.data(), out, err);
}

}  // namespace msmix
