// The run config, the run directory, the trainer, eval and the progress lines, on tiny synthetic runs
// (tests/msmix/tiny_runs.h): every file with its keys, bit-identical reruns, resume after an interruption, a
// non-finite loss, eval's CSV. compare's table: test_compare.cpp.
#include <unistd.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/checkpoint.h"
#include "models/checkpoint_io.h"
#include "models/registry.h"
#include "msmix/commands.h"
#include "msmix/progress.h"
#include "msmix/run_dir.h"
#include "msmix/trainer.h"
#include "tests/files.h"
#include "tests/msmix/tiny_runs.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;
namespace fs = std::filesystem;


TEST_CASE("run config: defaults table, run keys, overrides with type checks, device") {
  Config c = make_run_config(tiny_spec("msmix", 7, 3));
  CHECK(config_string(c, "model") == "tfn");
  CHECK(config_string(c, "dataset") == "mosi");
  CHECK(config_int(c, "max_epochs") == 3);
  CHECK(config_int(c, "early_stop") == 8);
  CHECK(config_int(c, "seed") == 7);
  CHECK(config_int(c, "batch_size") == 8);
  CHECK(config_string(c, "device") == "cpu");
  CHECK(config_float(c, "mix_weight") == doctest::Approx(0.7));
  CHECK(config_float(c, "sal_weight") == doctest::Approx(0.5));
  CHECK(config_float(c, "sal_s") == doctest::Approx(3.0));
  CHECK(dataset_kind("ch-sims") == "sims");
  CHECK(dataset_kind("mosei_aligned") == "mosei");
  CHECK(dataset_kind("mosi_utterance") == "mosi-utterance");
  CHECK(dataset_kind("unaligned_50") == "mosi");
  CHECK(data_name("synthetic:sims") == "sims");
  CHECK(data_name("/data/aligned_50.pkl") == "aligned_50");
  CHECK(config_float(make_run_config([] {
                       RunSpec s = tiny_spec("msmix", 1, 1);
                       s.data = "synthetic:sims";
                       return s;
                     }()),
                     "sal_s") == doctest::Approx(1.0));

  RunSpec bad = tiny_spec("none", 1, 1);
  bad.overrides.push_back("mix_weight=abc");
  check_throws_with([&] { make_run_config(bad); }, {"mix_weight", "abc"});
  bad = tiny_spec("sideways", 1, 1);
  check_throws_with([&] { make_run_config(bad); }, {"unknown method 'sideways'"});
  bad = tiny_spec("none", 1, 1);
  bad.model = "resnet";
  check_throws_with([&] { make_run_config(bad); }, {"unknown backbone 'resnet'", "tfn"});
  check_throws_with([] { resolve_device("gpu"); }, {"--device", "'gpu'"});
  CHECK(resolve_device("cpu") == Device::cpu());
  if (resolve_device("auto").is_cpu())
    check_throws_with([] { resolve_device("cuda"); }, {"--device cuda", "no such CUDA GPU"});
}

TEST_CASE("run config: the dataset kind comes from the file's name, else its nearest folder that names one") {
  CHECK(dataset_kind("/data/MOSEI/Processed/aligned_50.pkl") == "mosei");  // MMSA's layout
  CHECK(dataset_kind("/data/CH-SIMS/Processed/unaligned_39.pkl") == "sims");
  CHECK(dataset_kind("/data/SIMS/cmu_mosi_copy.pkl") == "mosi");             // the file's own name first
  CHECK(dataset_kind("/data/MOSI/ch_sims/Processed/x.pkl") == "sims");       // then the nearest folder
  CHECK(dataset_kind("/home/simsek/mosei_runs/a.pkl") == "mosei");           // folders name one as a whole word,
  CHECK(dataset_kind("/home/simsek/features/aligned_50.pkl") == "mosi");     // so simsek names none: mosi
  CHECK(dataset_kind("synthetic:mosei-aligned") == "mosei");
  CHECK(dataset_kind("synthetic:sims") == "sims");
  RunSpec spec;
  spec.model = "tfn";
  spec.data = "/data/MOSEI/Processed/unaligned_50.pkl";
  CHECK(config_string(make_run_config(spec), "dataset") == "mosei");
  spec.dataset = "mosi";  // --dataset wins
  CHECK(config_string(make_run_config(spec), "dataset") == "mosi");
}

TEST_CASE("prepare_data refuses labels outside the range the dataset's metrics score, naming the way out") {
  RunSpec spec = tiny_spec("none", 1, 1);  // synthetic MOSI: labels reach +-3
  spec.dataset = "sims";
  Config config = make_run_config(spec);
  Dataset data = load_data(config);
  check_throws_with([&] { prepare_data(data, config); },
                    {"split 'train' has labels in [-2.93", "outside [-1, 1]", "sims", "--dataset mosi"});

  spec.dataset = "mosi";
  config = make_run_config(spec);
  data = load_data(config);
  float* y = data.test.labels.data();
  y[5] = 4.5f;  // a label on another scale
  check_throws_with([&] { prepare_data(data, config); },
                    {"split 'test' has labels in", "4.5]", "outside [-3, 3]", "rescale"});
  y[5] = 3.0f;  // the bound itself is a label
  prepare_data(data, config);

  spec.data = "synthetic:sims";  // SIMS's labels fit both scales
  spec.dataset = "";
  config = make_run_config(spec);
  data = load_data(config);
  prepare_data(data, config);
}

TEST_CASE("run dir: atomic writes leave no temp files; log lines round-trip; a bad line is named") {
  TempDir tmp("rundir");
  RunDir dir(tmp.file("run"));
  dir.create();
  dir.write_json("a.json", Json{{"x", 1.5}, {"name", "tfn"}});
  dir.write_json("a.json", Json{{"x", 2.5}});
  CHECK(dir.read_json("a.json")["x"].get<double>() == 2.5);
  std::vector<Json> lines = {Json{{"epoch", 1}, {"loss", 0.1234567890123}, {"seconds", 0.5}},
                             Json{{"epoch", 2}, {"loss", 1e-300}, {"seconds", 0.25}}};
  dir.write_log(lines);
  CHECK(dir.read_log() == lines);  // doubles survive exactly
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    ++files;
    CHECK(entry.path().filename().string().find(".tmp.") == std::string::npos);
  }
  CHECK(files == 2);
  write_file_atomic(dir.file(kLogFile), "{\"epoch\": 1, \"seconds\": 0.5}\nnot json\n");
  check_throws_with([&] { dir.read_log(); }, {"log.jsonl", "line 2", "not a JSON object"});
  check_throws_with([&] { write_file_atomic(tmp.file("missing/x.json"), "{}"); }, {"missing/x.json"});
}

// A run folder's files edited or damaged by hand: each reader names the file and what is wrong with it (a
// missing key read through a const nlohmann::json aborts the process, which is what these guard against).
TEST_CASE("run dir: damaged results.json, log lines and config.json are errors naming the file and the field") {
  TempDir tmp("damaged");
  RunDir dir(tmp.file("run"));
  dir.create();
  const Json finished = {{"status", "finished"}, {"best_epoch", 2}, {"test", {{"MAE", 0.5}}}};
  dir.write_json(kResultsFile, finished);
  CHECK(dir.read_results() == finished);
  dir.write_json(kResultsFile, Json{{"status", "interrupted"}});  // an unfinished run has no metrics yet
  CHECK(dir.read_results()["status"] == "interrupted");
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"[1]", "not a JSON object"},
      {"{}", "no \"status\" string"},
      {"{\"status\": 3}", "no \"status\" string"},
      {"{\"status\": \"finished\"}", "without its \"best_epoch\""},
      {"{\"status\": \"finished\", \"best_epoch\": 1.5, \"test\": {}}", "without its \"best_epoch\""},
      {"{\"status\": \"finished\", \"best_epoch\": 1, \"test\": 3}", "without its \"test\" metrics"},
      {"{\"status\": \"finished\", \"best_epoch\": 1", "not valid JSON"}};
  for (const auto& [text, problem] : bad) {
    CAPTURE(text);
    write_file_atomic(dir.file(kResultsFile), text);
    check_throws_with([&] { dir.read_results(); }, {dir.file(kResultsFile), problem});
  }

  for (const char* line : {"{\"epoch\": 1}", "{\"seconds\": 1.5}", "{\"epoch\": \"1\", \"seconds\": 1.5}",
                           "{\"epoch\": 1, \"seconds\": null}"}) {
    CAPTURE(line);
    write_file_atomic(dir.file(kLogFile), std::string(line) + "\n");
    check_throws_with([&] { dir.read_log(); }, {dir.file(kLogFile), "line 1", "not an epoch line"});
  }

  write_file_atomic(dir.file(kConfigFile), "{\"model\": \"tfn\", \"da");  // cut short
  check_throws_with([&] { saved_config(dir.path()); }, {dir.file(kConfigFile), "not valid JSON"});
  write_file_atomic(dir.file(kConfigFile), "[\"tfn\"]");
  check_throws_with([&] { saved_config(dir.path()); }, {dir.file(kConfigFile), "not a run config", "array"});
  CHECK(saved_config_mismatch(dir.path(), Config::object()).find("not a JSON object") != std::string::npos);
  write_file_atomic(dir.file(kConfigFile), "{\"msmix_version\": 3}");
  CHECK(saved_config_mismatch(dir.path(), Config::object()).find("is from msmix") != std::string::npos);
}

TEST_CASE("trainer: a short run writes config.json, log.jsonl, best.safetensors and results.json") {
  TempDir tmp("files");
  Run run = tiny_run("msmix", 1111, 3);
  Trainer trainer(run.config, run.data, tmp.file("run"));
  int steps = 0;
  trainer.on_step = [&](const StepInfo& s) {
    ++steps;
    CHECK(s.steps == 4);
    CHECK(std::isfinite(s.loss_value()));
  };
  TrainResult r = trainer.fit();
  CHECK(steps == 12);
  CHECK(r.status == "finished");
  CHECK(r.epochs == 3);
  RunDir dir(tmp.file("run"));
  for (const char* f : {kConfigFile, kLogFile, kBestWeightsFile, kResultsFile, kLastCheckpointFile, kStateFile})
    CHECK_MESSAGE(dir.has(f), f);

  Json config = dir.read_json(kConfigFile);
  for (const char* key : {"model", "data", "dataset", "mix", "seed", "device", "learning_rate", "batch_size",
                          "max_epochs", "early_stop", "feature_dims", "mix_delta", "synthetic_scale", "msmix_version"})
    CHECK_MESSAGE(config.contains(key), key);
  CHECK(config["feature_dims"] == Json({768, 5, 20}));

  std::vector<Json> log = dir.read_log();
  REQUIRE(log.size() == 3);
  for (size_t e = 0; e < log.size(); ++e) {
    for (const char* key : {"epoch", "train_loss", "train_task_loss", "train_mix_loss", "train_sal_loss", "valid_loss",
                            "valid", "lr", "best_epoch", "seconds"})
      CHECK_MESSAGE(log[e].contains(key), key);
    CHECK(log[e]["epoch"].get<int64_t>() == int64_t(e + 1));
    CHECK(log[e]["lr"].contains("all"));
    CHECK(log[e]["lr"].contains("mixer"));  // the intensity predictors train too
    std::vector<std::string> names;
    for (auto it = log[e]["valid"].begin(); it != log[e]["valid"].end(); ++it) names.push_back(it.key());
    CHECK(names == kMosiMetrics);
    // L = L_task + 0.7 L_mix + 0.5 L_SAL, averaged over the same steps.
    const double total = log[e]["train_task_loss"].get<double>() + 0.7 * log[e]["train_mix_loss"].get<double>() +
                         0.5 * log[e]["train_sal_loss"].get<double>();
    CHECK(log[e]["train_loss"].get<double>() == doctest::Approx(total).epsilon(1e-5));
  }

  Json results = dir.read_json(kResultsFile);
  CHECK(results["status"] == "finished");
  CHECK(results["best_epoch"].get<int64_t>() == r.best_epoch);
  std::vector<std::string> names;
  for (auto it = results["test"].begin(); it != results["test"].end(); ++it) names.push_back(it.key());
  CHECK(names == kMosiMetrics);
  // The best valid loss is the minimum of the logged ones, at the logged best epoch.
  double best = 1e9;
  for (const Json& line : log) best = std::min(best, line["valid_loss"].get<double>());
  CHECK(results["best_valid_loss"].get<double>() == best);
  CHECK(log[size_t(r.best_epoch - 1)]["valid_loss"].get<double>() == best);

  // best.safetensors is the backbone alone, with its own names: it loads into a fresh model and scores the
  // test split exactly as results.json says.
  auto model = make_backbone("tfn", config_feature_dims(run.config), run.config);
  load_into(*model, dir.file(kBestWeightsFile));
  Evaluation e = evaluate(*model, run.data.test, run.config, Device::cpu());
  for (const auto& [name, value] : e.metrics)
    if (std::isfinite(value)) CHECK(results["test"][name].get<double>() == value);
}

TEST_CASE("trainer: mix_lr gives the intensity predictors their own learning rate; -1 keeps the backbone's") {
  for (double mix_lr : {-1.0, 0.0005}) {
    RunSpec spec = tiny_spec("msmix", 1111, 1);
    spec.overrides.push_back(fmt::format("mix_lr={}", mix_lr));
    Config config = make_run_config(spec);
    Dataset data = load_data(config);
    prepare_data(data, config);
    const Json lr = Trainer(config, data).fit().log.at(0)["lr"];
    CAPTURE(lr.dump());
    CHECK(lr["mixer"].get<double>() == doctest::Approx(mix_lr > 0 ? mix_lr : lr["all"].get<double>()));
  }
}

TEST_CASE("trainer: the same seed gives identical log lines, another seed different ones") {
  auto log_of = [](const std::string& mix, uint64_t seed) {
    Run run = tiny_run(mix, seed, 2);
    Trainer trainer(run.config, run.data);
    return without_seconds(trainer.fit().log);
  };
  for (const char* mix : {"none", "mixup", "manifold", "multimix", "msmix"}) {
    CAPTURE(mix);
    std::vector<std::string> a = log_of(mix, 1111), b = log_of(mix, 1111);
    CHECK(a == b);
    CHECK(a != log_of(mix, 1112));
  }
}

TEST_CASE("trainer: shuffle=false trains in file order, so without dropout the seed no longer matters") {
  // Start every run from the same weights with every dropout off: the seed then only picks the batch order.
  TempDir tmp("shuffle");
  {
    Run first = tiny_run("none", 1111, 1);
    Trainer(first.config, first.data, (tmp.path / "init").string()).fit();
  }
  auto log_of = [&](uint64_t seed, bool shuffle) {
    RunSpec spec = tiny_spec("none", seed, 2);
    spec.weights = (tmp.path / "init" / "best.safetensors").string();
    spec.overrides.push_back("dropouts=[0,0,0,0]");
    spec.overrides.push_back(shuffle ? "shuffle=true" : "shuffle=false");
    Config config = make_run_config(spec);
    Dataset data = load_data(config);
    prepare_data(data, config);
    std::vector<std::string> lines;
    for (const Json& line : Trainer(config, data).fit().log)
      lines.push_back(fmt::format("{} {}", line["train_loss"].dump(), line["valid_loss"].dump()));
    return lines;
  };
  CHECK(make_run_config(tiny_spec("none", 1, 1))["shuffle"] == true);  // the default
  CHECK(log_of(1111, false) == log_of(1112, false));
  CHECK(log_of(1111, true) != log_of(1112, true));
}

TEST_CASE("trainer: each log line holds the epoch's mixing statistics under \"mix\" (none: no such key)") {
  for (const char* mix : {"none", "mixup", "manifold", "multimix", "msmix"}) {
    CAPTURE(mix);
    Run run = tiny_run(mix, 1111, 2);
    std::vector<Json> log = Trainer(run.config, run.data).fit().log;
    REQUIRE(log.size() == 2);
    for (const Json& line : log) {
      if (std::string(mix) == "none") {
        CHECK(!line.contains("mix"));
        continue;
      }
      REQUIRE(line.contains("mix"));
      const Json& m = line["mix"];
      CHECK(m["steps"] == 4);  // 32 samples, batches of 8
      if (std::string(mix) == "multimix") {  // weights over the batch, no pairs (tests/msmix/test_multimix.cpp)
        CHECK(m["mixed_per_batch"].get<double>() == 8);
        CHECK(!m.contains("pairs_per_batch"));
        CHECK((m["weight_max_mean"].get<double>() > 1.0 / 8 && m["weight_max_mean"].get<double>() < 1));
        CHECK((m["sources_effective_mean"].get<double>() > 1 && m["sources_effective_mean"].get<double>() < 8));
        continue;
      }
      CHECK(m["pairs_per_batch"].get<double>() == 8);
      for (auto it = m.begin(); it != m.end(); ++it) {
        CAPTURE(it.key());
        REQUIRE(it.value().is_number());
        const double v = it.value().get<double>();
        CHECK(std::isfinite(v));
        const std::string key = it.key();
        const bool fraction = key.find("fraction") != std::string::npos || key.rfind("lambda_", 0) == 0 ||
                              key == "pair_similarity_mean";
        if (fraction) CHECK((v >= 0 && v <= 1));  // ratios, their spreads and differences, S', shares
        if (key.rfind("intensity_", 0) == 0) CHECK(std::fabs(v) <= 3);  // I = 3 tanh(.)
        if (key.find("_std") != std::string::npos || key.find("distance") != std::string::npos) CHECK(v >= 0);
      }
      const bool msmix = std::string(mix) == "msmix";
      for (const char* key : {"fallback_fraction", "candidates_per_batch", "candidate_fraction", "intensity_t_mean",
                              "intensity_v_std"})
        CHECK_MESSAGE(m.contains(key) == msmix, key);
      if (msmix) CHECK(m["candidates_per_batch"].get<double>() <= 8 * 7);  // ordered pairs of 8 samples
      else CHECK(m["lambda_diff_ta"].get<double>() == 0);  // one lambda for every modality
    }
  }
}

TEST_CASE("trainer: a run interrupted mid-epoch and resumed reproduces the uninterrupted run") {
  TempDir tmp("resume");
  Run full = tiny_run("msmix", 1111, 4);
  TrainResult whole = Trainer(full.config, full.data, tmp.file("whole")).fit();

  Run part = tiny_run("msmix", 1111, 4);
  {
    Trainer trainer(part.config, part.data, tmp.file("part"));
    trainer.on_step = [](const StepInfo& s) {
      if (s.epoch == 3 && s.step == 2) request_stop();  // Ctrl-C in the middle of epoch 3
    };
    TrainResult r = trainer.fit();
    clear_stop_request();
    CHECK(r.status == "interrupted");
    CHECK(r.epochs == 2);
    Json results = RunDir(tmp.file("part")).read_json(kResultsFile);
    CHECK(results["status"] == "interrupted");
    CHECK(results["resume"].get<std::string>().find("--resume") != std::string::npos);
    CHECK(RunDir(tmp.file("part")).read_log().size() == 2);
  }
  // A fresh process would rebuild everything from config.json; the RNG streams start elsewhere here.
  manual_seed(999);
  Trainer resumed(part.config, part.data, tmp.file("part"));
  resumed.resume();
  TrainResult r = resumed.fit();
  CHECK(r.status == "finished");
  CHECK(without_seconds(r.log) == without_seconds(whole.log));
  CHECK(without_seconds(RunDir(tmp.file("part")).read_log()) == without_seconds(whole.log));
  CHECK(r.test == whole.test);
  CHECK(r.best_epoch == whole.best_epoch);

  // A last.safetensors whose training state was damaged is an error naming it, not an abort.
  const std::string last = RunDir(tmp.file("part")).file(kLastCheckpointFile);
  Checkpoint ck = load_safetensors(last);
  for (const char* state : {"{}", "{\"epoch\": \"two\"}", "not json"}) {
    CAPTURE(state);
    ck.metadata["state"] = state;
    save_safetensors(last, ck.tensors, ck.metadata);
    Run again = tiny_run("msmix", 1111, 4);
    Trainer damaged(again.config, again.data, tmp.file("part"));
    check_throws_with([&] { damaged.resume(); }, {"resume", kLastCheckpointFile, "training state", "unreadable"});
  }

  // Resuming with another config is refused, naming the key.
  Run other = tiny_run("msmix", 1112, 4);
  Trainer wrong(other.config, other.data, tmp.file("part"));
  check_throws_with([&] { wrong.resume(); }, {"config differs", "seed"});
}

TEST_CASE("trainer: MulT with gradient accumulation, clipping and the plateau scheduler resumes exactly") {
  // Sequences reach the mixer as [B, T, d]; update_epochs 2 accumulates two batches per step, grad_clip 0.6
  // clips by value, patience 0 lets ReduceLROnPlateau cut the lr at the first epoch without improvement.
  auto spec = [] {
    RunSpec s = tiny_spec("msmix", 1111, 6);
    s.model = "mult";
    s.overrides = {"synthetic_scale=0.125", "synthetic_max_steps=4", "dst_feature_dim_nheads=[8,2]", "nlevels=1",
                   "conv1d_kernel_size_l=1", "conv1d_kernel_size_a=1", "conv1d_kernel_size_v=1",
                   "batch_size=8", "update_epochs=2", "patience=0"};
    return s;
  };
  TempDir tmp("mult");
  Config config = make_run_config(spec());
  CHECK(config_int(config, "update_epochs") == 2);
  CHECK(config_float(config, "grad_clip") == doctest::Approx(0.6));
  CHECK(config_string(config, "scheduler") == "reduce_on_plateau");
  Dataset data = load_data(config);
  prepare_data(data, config);
  TrainResult whole = Trainer(config, data, tmp.file("whole")).fit();
  bool reduced = false;
  for (const Json& line : whole.log) reduced |= line["lr"]["all"].get<double>() < 2e-3 * 0.5;
  CHECK(reduced);

  Trainer first(config, data, tmp.file("part"));
  first.on_step = [](const StepInfo& s) {
    if (s.epoch == 4 && s.step == 3) request_stop();  // inside an accumulation group
  };
  CHECK(first.fit().status == "interrupted");
  clear_stop_request();
  Trainer second(config, data, tmp.file("part"));
  second.resume();
  TrainResult r = second.fit();
  CHECK(without_seconds(r.log) == without_seconds(whole.log));
  CHECK(r.test == whole.test);
}

// cuda_graph is checked on every device (the GPU side: tests/cuda/test_cuda_graph.cpp); on the CPU it changes
// nothing but what results.json says of it.
TEST_CASE("trainer: cuda_graph changes nothing on the CPU, with mixing or accumulation") {
  const std::pair<const char*, const char*> cases[] = {{"none", "update_epochs=1"},
                                                       {"none", "update_epochs=3"},
                                                       {"msmix", "update_epochs=1"},
                                                       {"mixup", "update_epochs=3"},
                                                       {"multimix", "mix_count=12"}};
  for (const auto& [mix, accumulate] : cases) {
    CAPTURE(mix);
    CAPTURE(accumulate);
    TempDir tmp("graph");
    RunSpec plain_spec = tiny_spec(mix, 1111, 2);
    plain_spec.overrides.push_back(accumulate);
    Run plain{make_run_config(plain_spec), {}};
    plain.data = load_data(plain.config);
    prepare_data(plain.data, plain.config);
    RunSpec spec = plain_spec;
    spec.overrides.push_back("cuda_graph=true");
    Run graphed{make_run_config(spec), {}};
    graphed.data = load_data(graphed.config);
    prepare_data(graphed.data, graphed.config);
    Trainer t(graphed.config, graphed.data, tmp.file("run"));
    TrainResult r = t.fit();
    CHECK(without_seconds(r.log) == without_seconds(Trainer(plain.config, plain.data).fit().log));
    CHECK(t.graph_replays() == 0);
    CHECK(RunDir(tmp.file("run")).read_json(kResultsFile)["cuda_graph"] == "not used: the CPU runs uncaptured");
  }
}

TEST_CASE("trainer: MS-Mix with a batch larger than its selection takes fails before training, naming both") {
  RunSpec spec = tiny_spec("msmix", 1111, 1);
  spec.overrides.push_back("batch_size=5000");
  Config config = make_run_config(spec);
  Dataset data = load_data(config);
  prepare_data(data, config);
  check_throws_with([&] { Trainer t(config, data); }, {"MS-Mix", "at most 4096", "batch_size is 5000"});
  spec.mix = "mixup";  // the baselines draw no selection: no such bound
  Config mixup = make_run_config(spec);
  CHECK_NOTHROW(Trainer(mixup, data));
}

TEST_CASE("trainer: update_epochs below 1 is refused before training (MMSA's loop would never step)") {
  for (const char* value : {"update_epochs=0", "update_epochs=-2"}) {
    RunSpec spec = tiny_spec("none", 1111, 1);
    spec.overrides.push_back(value);
    Config config = make_run_config(spec);
    Dataset data = load_data(config);
    prepare_data(data, config);
    check_throws_with([&] { Trainer t(config, data); }, {"update_epochs", "must be at least 1"});
  }
  RunSpec spec = tiny_spec("none", 1111, 1);
  spec.overrides.push_back("update_epochs=1");
  Config config = make_run_config(spec);
  Dataset data = load_data(config);
  prepare_data(data, config);
  CHECK_NOTHROW(Trainer(config, data));
}

TEST_CASE("trainer: a non-finite loss stops the run naming the epoch and step, keeping the last good checkpoint") {
  TempDir tmp("nan");
  Run run = tiny_run("none", 1111, 5);
  Trainer trainer(run.config, run.data, tmp.file("run"));
  trainer.on_epoch = [&](const Json& line) {
    if (line["epoch"].get<int64_t>() != 2) return;
    Tensor w = trainer.model().named_parameters().back().second;  // the last layer's bias
    w.fill_(NAN);
  };
  check_throws_with([&] { trainer.fit(); },
                    {"non-finite loss (nan) at epoch 3, step 1 of 4", "the train split's inputs are all finite",
                     "diverged", "last.safetensors (end of epoch 2)", "best.safetensors"});
  RunDir dir(tmp.file("run"));
  CHECK(dir.read_json(kResultsFile)["status"] == "failed");
  CHECK(dir.read_log().size() == 2);
  CHECK(dir.read_json(kStateFile)["epoch"].get<int64_t>() == 2);
  // The resume point still holds finite weights: it was written before the parameter went bad.
  Checkpoint ck = load_safetensors(dir.file(kLastCheckpointFile));
  for (const auto& [name, t] : ck.tensors)
    for (float v : t.to_vector()) REQUIRE_MESSAGE(std::isfinite(v), name);
}

TEST_CASE("trainer: non-finite inputs in a file are named as the cause, in training and in scoring") {
  {
    Run run = tiny_run("none", 1111, 2);
    run.data.train.text.data()[run.data.train.text.numel() / 2] = INFINITY;  // TFN's text is never averaged
    run.data.train.text.data()[7] = NAN;
    TempDir tmp("nan-train");
    check_throws_with([&] { Trainer(run.config, run.data, tmp.file("run")).fit(); },
                      {"non-finite loss", "epoch 1", "the train split's inputs hold non-finite values (text 2;",
                       "clean the file's features"});
    CHECK(RunDir(tmp.file("run")).read_json(kResultsFile)["status"] == "failed");
  }
  Run run = tiny_run("none", 1111, 2);
  const int64_t row = 3, per_row = run.data.valid.text.numel() / run.data.valid.size();
  run.data.valid.text.data()[row * per_row + 1] = NAN;
  TempDir tmp("nan-valid");
  check_throws_with(
      [&] { Trainer(run.config, run.data, tmp.file("run")).fit(); },
      {"scoring the valid split at the end of epoch 1", "predicts nan for sample '",
       fmt::format("(row {} of {})", row, run.data.valid.size()), "its inputs hold non-finite values (text 1)"});
  CHECK(RunDir(tmp.file("run")).read_json(kResultsFile)["status"] == "failed");

  // Finite inputs and a broken model: the message says so.
  Run clean = tiny_run("none", 1111, 1);
  auto model = make_backbone("tfn", config_feature_dims(clean.config), clean.config);
  model->named_parameters().back().second.fill_(NAN);
  check_throws_with([&] { evaluate(*model, clean.data.test, clean.config, Device::cpu()); },
                    {"predicts nan for sample '", "(row 0 of", "its inputs are finite, so the model's weights"});
}

TEST_CASE("eval: metrics as JSON, predictions CSV with a header and one row per sample") {
  TempDir tmp("eval");
  Run run = tiny_run("none", 1111, 2);
  Trainer(run.config, run.data, tmp.file("run")).fit();

  EvalCommand command;
  command.data = "synthetic:mosi";
  command.weights = RunDir(tmp.file("run")).file(kBestWeightsFile);  // config.json beside it shapes the model
  command.predictions = tmp.file("pred.csv");
  command.json = true;
  command.device = "cpu";
  std::ostringstream out;
  Evaluation e = eval_command(command, out);
  Json metrics = Json::parse(out.str());
  for (const std::string& name : kMosiMetrics) CHECK(metrics.contains(name));
  CHECK(metrics.contains("Loss"));
  Json results = RunDir(tmp.file("run")).read_json(kResultsFile);
  CHECK(metrics["MAE"] == results["test"]["MAE"]);

  std::ifstream csv(tmp.file("pred.csv"));
  std::string line;
  std::getline(csv, line);
  CHECK(line == "id,label,prediction");
  int64_t rows = 0;
  while (std::getline(csv, line)) {
    ++rows;
    CHECK(std::count(line.begin(), line.end(), ',') == 2);
  }
  CHECK(rows == run.data.test.size());
  CHECK(int64_t(e.predictions.size()) == rows);

  // A checkpoint that does not fit the model is refused with the tensor names.
  EvalCommand wrong = command;
  wrong.weights = tmp.file("w.safetensors");
  save_safetensors(wrong.weights, TensorDict{{"bogus", Tensor::zeros({2})}});
  wrong.model = "tfn";
  wrong.overrides = tiny_overrides();
  check_throws_with([&] { eval_command(wrong, out); }, {"bogus"});
}

TEST_CASE("progress: epoch lines and the bar") {
  Json line = {{"epoch", 3},     {"train_loss", 0.81234},        {"valid_loss", 0.7012},
               {"valid", {{"MAE", 0.7012}, {"Corr", nullptr}}}, {"lr", {{"all", 0.001}, {"mixer", 0.0005}}},
               {"best_epoch", 3}, {"seconds", 4.25}};
  CHECK(format_epoch_line(line) ==
        "epoch   3 | train 0.8123 | valid 0.7012 (best @ 3) | MAE 0.7012 Corr - | lr 0.001,0.0005 | 4.2 s");
  Json with_mix = line;
  with_mix["mix"] = {{"steps", 4}, {"fallback_fraction", 0.35}};
  CHECK(format_epoch_line(with_mix) ==
        "epoch   3 | train 0.8123 | valid 0.7012 (best @ 3) | MAE 0.7012 Corr - | lr 0.001,0.0005 | fallback 35% | 4.2 "
        "s");
  with_mix["mix"] = {{"steps", 4}, {"opposite_sign_fraction", 0.5}};  // mixup: no selection, nothing added
  CHECK(format_epoch_line(with_mix) == format_epoch_line(line));
  StepInfo s{2, 10, 4, 8, 32, Tensor::scalar(0.5f)};
  CHECK(format_progress_bar(s, 412.4, 3.4) ==
        "epoch 2/10 [============>           ] 4/8 loss 0.5000 | 412 it/s | ETA 0:03");
  CHECK(format_duration(3725) == "1:02:05");

  std::ostringstream piped;
  Progress p(piped, false);
  p.step(s);
  CHECK(piped.str().empty());
  p.epoch(line);
  CHECK(piped.str() == format_epoch_line(line) + "\n");
  std::ostringstream tty;
  Progress t(tty, true);
  t.step(s);
  CHECK(tty.str().find("[============>") != std::string::npos);
  t.epoch(line);
  CHECK(tty.str().find("\r\033[K" + format_epoch_line(line)) != std::string::npos);
}
