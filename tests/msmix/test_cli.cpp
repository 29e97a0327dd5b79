// The command line through run_cli (main() without the process): exit codes, "msmix: error: ..." messages
// for bad input, --help on every subcommand, and tiny end-to-end train / eval / data runs.
#include <unistd.h>

#include <filesystem>
#include <map>
#include <regex>
#include <sstream>

#include "engine/checkpoint.h"
#include "engine/cuda_runtime.h"
#include "msmix/commands.h"
#include "ops/cuda/kernels.h"
#include "tests/testing.h"

using namespace msmix;
namespace fs = std::filesystem;

namespace {

struct Outcome {
  int code;
  std::string out, err;
};

Outcome cli(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  int code = run_cli(args, out, err);
  return {code, out.str(), err.str()};
}

void check_error(const std::vector<std::string>& args, const std::vector<std::string>& parts) {
  Outcome o = cli(args);
  CAPTURE(o.err);
  CHECK(o.code != 0);
  CHECK(o.err.rfind("msmix: error: ", 0) == 0);
  for (const std::string& part : parts) CHECK_MESSAGE(o.err.find(part) != std::string::npos, "lacks '" << part << "'");
}

const std::vector<std::string> kTiny = {"--set",
                                        "synthetic_scale=0.125",
                                        "synthetic_max_steps=4",
                                        "hidden_dims=[8,4,8]",
                                        "text_out=4",
                                        "post_fusion_dim=8",
                                        "batch_size=8"};

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

TEST_CASE("cli: --help on every subcommand, info, and a subcommand is required") {
  for (const char* sub : {"train", "eval", "compare", "bench", "data", "info"}) {
    Outcome o = cli({sub, "--help"});
    CAPTURE(sub);
    CHECK(o.code == 0);
    CHECK(o.out.find("Usage:") != std::string::npos);
  }
  CHECK(cli({"train", "--help"}).out.find("--mix") != std::string::npos);
  CHECK(cli({"compare", "--help"}).out.find("--seeds") != std::string::npos);
  Outcome info = cli({"info"});
  CHECK(info.code == 0);
  CHECK(info.out.find("msmix: ") == 0);
  if (cuda::compiled()) {  // the GPU kernel choices: persistent and composite unless the environment says not
    const char* lstm = std::getenv("MSMIX_CUDA_LSTM");
    const char* fused = std::getenv("MSMIX_CUDA_FUSED_ATTENTION");
    const char* softmax = std::getenv("MSMIX_CUDA_SOFTMAX");
    CHECK(info.out.find(fmt::format("gpu kernels: LSTM {} (MSMIX_CUDA_LSTM), attention {} "
                                    "(MSMIX_CUDA_FUSED_ATTENTION), softmax {}",
                                    lstm && *lstm ? lstm : "persistent",
                                    fused && std::string(fused) == "1" ? "fused" : "composite",
                                    softmax && std::string(softmax) == "registers" ? "registers" : "passes")) !=
          std::string::npos);
    CHECK(info.out.find("cudnn: " + cuda::cudnn_version()) != std::string::npos);
  }
  check_error({}, {"subcommand"});
}

TEST_CASE("cli: bad input gives a clear message and a non-zero exit") {
  check_error({"train", "--model", "nope", "--data", "synthetic:mosi"}, {"unknown backbone 'nope'", "tfn"});
  check_error({"train", "--model", "tfn", "--data", "synthetic:mosi", "--mix", "bad"}, {"unknown method 'bad'"});
  check_error({"train", "--model", "tfn", "--data", "/no/such/file.pkl"}, {"/no/such/file.pkl", "no such file"});
  check_error({"train", "--model", "tfn", "--data", "features.csv"}, {"features.csv", "*.pkl", "synthetic:NAME"});
  check_error({"train", "--model", "tfn", "--data", "synthetic:imdb"}, {"unknown dataset 'imdb'"});
  check_error({"train", "--model", "tfn"}, {"--model and --data are required"});
  check_error({"train", "--model", "tfn", "--data", "synthetic:mosi", "--set", "rnak=3"}, {"unknown key 'rnak'"});
  check_error({"train", "--model", "tfn", "--data", "synthetic:mosi", "--bogus"}, {"--bogus"});
  check_error({"train", "--model", "tfn", "--data", "synthetic:mosi", "--device", "tpu"}, {"--device", "'tpu'"});
  // 0 or a negative count of epochs is refused, not read as "the table's max_epochs".
  check_error({"train", "--model", "tfn", "--data", "synthetic:mosi", "--epochs", "0"},
              {"--epochs", "must be at least 1 (got 0)"});
  check_error({"compare", "--model", "tfn", "--data", "synthetic:mosi", "--epochs", "-2"},
              {"--epochs", "must be at least 1 (got -2)"});
  const fs::path never = fs::temp_directory_path() / "msmix_never_written_run";
  const Outcome o = cli({"train", "--model", "tfn", "--data", "synthetic:mosi", "--dataset", "sims", "--out",
                         never.string()});
  CHECK(o.code == 1);
  CHECK(o.err.find("msmix: error: dataset 'mosi': split 'train' has labels in [") != std::string::npos);
  CHECK(o.err.find("outside [-1, 1], the range sims's metrics score; for labels in [-3, 3] pass --dataset mosi") !=
        std::string::npos);
  CHECK_FALSE(fs::exists(never));  // refused before the run directory is made
  check_error({"train", "--resume", "/no/such/run"}, {"/no/such/run", "config.json"});
  check_error({"train", "--resume", "/no/such/run", "--epochs", "30"}, {"continues the saved config.json"});
  check_error({"compare", "--model", "tfn", "--data", "synthetic:mosi", "--seeds", "1111,x"}, {"--seeds", "'x'"});
  check_error({"compare", "--model", "tfn", "--data", "synthetic:mosi", "--mix", "none,,msmix"}, {"--mix", "empty"});
  check_error({"compare", "--model", "tfn", "--data", "synthetic:mosi", "--mix", "none,cutmix"}, {"'cutmix'"});
  check_error({"eval", "--model", "tfn", "--data", "synthetic:mosi", "--weights", "/no/such.safetensors"},
              {"/no/such.safetensors", "no such file"});
  check_error({"eval", "--model", "tfn", "--data", "synthetic:mosi"}, {"--weights"});
  check_error({"data", "/no/such/file.pkl"}, {"no such file"});
}

TEST_CASE("cli: data prints the summary; train, then eval --json and --predictions on its weights") {
  // The real MOSI file when present (fast to read), else the synthetic set.
  const std::string real = "../../shared/data/mosi-utterance/mosi_utterance.pkl";
  const std::string source = fs::exists(real) ? real : "synthetic:mosi";
  Outcome data = cli({"data", source});
  CAPTURE(data.err);
  CHECK(data.code == 0);
  CHECK(data.out.find("valid") != std::string::npos);
  CHECK(data.out.find("regression_labels") != std::string::npos);

  const fs::path dir = fs::temp_directory_path() / ("msmix_cli_test_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const std::string run = (dir / "run").string();
  Outcome train = cli(std::vector<std::string>{"train", "--model", "tfn", "--data", "synthetic:mosi", "--mix", "msmix",
                                               "--seed", "5", "--device", "cpu", "--epochs", "2", "--out", run} +
                      kTiny);
  CAPTURE(train.err);
  CHECK(train.code == 0);
  CHECK(train.out.find("MAE") != std::string::npos);
  CHECK(train.err.find("epoch   2 |") != std::string::npos);  // piped: plain epoch lines
  CHECK(fs::exists(fs::path(run) / "results.json"));

  // The same directory again without --overwrite is refused; --resume of a finished run just re-scores it.
  check_error(std::vector<std::string>{"train", "--model", "tfn", "--data", "synthetic:mosi", "--out", run} + kTiny,
              {"already holds a run", "--resume"});
  Outcome resumed = cli({"train", "--resume", run});
  CHECK(resumed.code == 0);
  CHECK(resumed.out == train.out);

  const std::string csv = (dir / "pred.csv").string();
  Outcome eval = cli({"eval", "--data", "synthetic:mosi", "--weights", run + "/best.safetensors", "--split", "valid",
                      "--device", "cpu", "--json", "--predictions", csv});
  CAPTURE(eval.err);
  CHECK(eval.code == 0);
  CHECK(Json::parse(eval.out).contains("Has0_acc_2"));
  CHECK(fs::exists(csv));
  fs::remove_all(dir);
}

namespace {

struct TableRow {
  std::string shape, kind, group;
  int64_t count = 0;
};

// The rows of `msmix info --model --data`: name -> (shape, count, kind, group).
std::map<std::string, TableRow> info_rows(const std::string& out) {
  std::map<std::string, TableRow> rows;
  static const std::regex row(R"(^(\S+)\s+(\[[0-9, ]*\])\s+([0-9,]+)\s+(trainable|frozen|buffer)\s+(\S+)$)");
  std::istringstream lines(out);
  std::string line;
  std::smatch m;
  while (std::getline(lines, line)) {
    if (!std::regex_match(line, m, row)) continue;
    std::string digits;
    for (char c : m[3].str())
      if (c != ',') digits += c;
    rows[m[1]] = {m[2], m[4], m[5], std::stoll(digits)};
  }
  return rows;
}

}  // namespace

TEST_CASE("cli: info --model --data prints MMSA's state-dict names and the trainable totals at MOSI") {
  // synthetic:mosi has MMSA's MOSI widths (768, 5, 20); the totals are MMSA's own counts (issue 5).
  const std::vector<std::pair<std::string, int64_t>> expected = {
      {"lf_dnn", 597171}, {"tfn", 9497043}, {"lmf", 505071}, {"mult", 2571551}, {"misa", 1138033},
      {"almt", 2603649}, {"glomo", 913415}};
  const std::map<std::string, std::string> commas = {
      {"lf_dnn", "597,171"}, {"tfn", "9,497,043"}, {"lmf", "505,071"}, {"mult", "2,571,551"},
      {"misa", "1,138,033"}, {"almt", "2,603,649"}, {"glomo", "913,415"}};
  for (const auto& [model, total] : expected) {
    CAPTURE(model);
    Outcome o = cli({"info", "--model", model, "--data", "synthetic:mosi"});
    CAPTURE(o.err);
    REQUIRE(o.code == 0);
    CHECK(o.out.find("feature dims (768, 5, 20)") != std::string::npos);
    CHECK(o.out.find("trainable parameters: " + commas.at(model) + "\n") != std::string::npos);
    // The rows add up to the total, and every count is the product of its shape.
    const auto rows = info_rows(o.out);
    int64_t sum = 0;
    for (const auto& [name, r] : rows) {
      if (r.kind == "trainable") sum += r.count;
      int64_t product = 1;
      std::string dims = r.shape.substr(1, r.shape.size() - 2);
      std::istringstream in(dims);
      for (std::string d; std::getline(in, d, ',');) product *= std::stoll(d);
      CHECK_MESSAGE(product == r.count, name);
    }
    CHECK(sum == total);
  }
  const auto tfn = info_rows(cli({"info", "--model", "tfn", "--data", "synthetic:mosi"}).out);
  CHECK(tfn.at("audio_subnet.norm.running_mean").kind == "buffer");
  CHECK(tfn.at("audio_subnet.norm.num_batches_tracked").shape == "[]");
  CHECK(tfn.at("text_subnet.rnn.weight_ih_l0").shape == "[512, 768]");
  CHECK(tfn.at("post_fusion_layer_1.weight").shape == "[64, 140481]");
  CHECK(tfn.at("output_range").kind == "frozen");
  const auto lmf = info_rows(cli({"info", "--model", "lmf", "--data", "synthetic:mosi"}).out);
  CHECK(lmf.at("fusion_weights").kind == "trainable");
  CHECK(lmf.at("fusion_weights").group == "-");  // MMSA's optimizer leaves it out
  CHECK(lmf.at("audio_factor").group == "factors");
  // --set reshapes the model; --dataset picks another table entry.
  const auto small = info_rows(cli({"info", "--model", "tfn", "--data", "synthetic:mosi", "--set", "text_out=8"}).out);
  CHECK(small.at("text_subnet.linear_1.weight").shape == "[8, 128]");
  Outcome mosei = cli({"info", "--model", "lf_dnn", "--data", "synthetic:mosei"});
  CHECK(mosei.out.find("trainable parameters: 572,283\n") != std::string::npos);

  check_error({"info", "--model", "tfn"}, {"--model and --data"});
  check_error({"info", "--data", "synthetic:mosi"}, {"--model and --data"});
  check_error({"info", "--model", "nope", "--data", "synthetic:mosi"}, {"unknown backbone 'nope'"});
}

TEST_CASE("cli: bench --json prints one JSON object with ms_per_step on its last line") {
  Outcome o = cli({"bench", "--model", "lf_dnn", "--data", "synthetic:mosi", "--batch", "4", "--steps", "2",
                   "--warmup", "1", "--set", "synthetic_max_steps=3", "--set", "hidden_dims=[8,4,8]", "--set",
                   "text_out=4", "--set", "post_fusion_dim=8", "--json"});
  CAPTURE(o.err);
  REQUIRE(o.code == 0);
  std::string last = o.out.substr(0, o.out.size() - 1);
  last = last.substr(last.rfind('\n') == std::string::npos ? 0 : last.rfind('\n') + 1);
  Json j = Json::parse(last);
  CHECK(j["ms_per_step"].get<double>() > 0);
  CHECK(j["batch"] == 4);
  CHECK(j["steps"] == 2);
  CHECK(j["model"] == "lf_dnn");
  CHECK(o.err.find("step 3/3") != std::string::npos);
  check_error({"bench", "--model", "tfn", "--data", "synthetic:mosi", "--mix", "cutmix"}, {"'cutmix'"});
  check_error({"bench", "--model", "tfn"}, {"--data"});

  // --ops: the op table after the timing lines.
  Outcome p = cli({"bench", "--model", "lf_dnn", "--data", "synthetic:mosi", "--batch", "4", "--steps", "2",
                   "--warmup", "0", "--set", "synthetic_max_steps=3", "--set", "hidden_dims=[8,4,8]", "--set",
                   "text_out=4", "--set", "post_fusion_dim=8", "--ops"});
  CAPTURE(p.err);
  REQUIRE(p.code == 0);
  CHECK(p.out.find("where a step's time goes (2 more steps") != std::string::npos);
  CHECK(p.out.find("lstm_scan") != std::string::npos);
  CHECK(p.out.find("inside ranges: ") != std::string::npos);
  CHECK(p.err.find("step 4/4") != std::string::npos);
}

TEST_CASE("cli: train --weights starts from a state dict, records it in config.json, and rejects a mismatch") {
  const fs::path dir = fs::temp_directory_path() / ("msmix_cli_weights_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const std::string first = (dir / "first").string(), second = (dir / "second").string();
  Outcome a = cli(std::vector<std::string>{"train", "--model", "tfn", "--data", "synthetic:mosi", "--device", "cpu",
                                           "--epochs", "1", "--out", first} +
                  kTiny);
  CAPTURE(a.err);
  REQUIRE(a.code == 0);
  const std::string weights = first + "/best.safetensors";

  // Fine-tuning run: its config.json names the file (absolute), and the trainer's model starts from it.
  Outcome b = cli(std::vector<std::string>{"train", "--model", "tfn", "--data", "synthetic:mosi", "--device", "cpu",
                                           "--epochs", "1", "--seed", "7", "--out", second, "--weights", weights} +
                  kTiny);
  CAPTURE(b.err);
  REQUIRE(b.code == 0);
  const Json config = Json::parse(read_text_file(second + "/config.json"));
  REQUIRE(config.contains("weights"));
  CHECK(config["weights"] == fs::absolute(weights).lexically_normal().string());

  Config c = Config::parse(config.dump());
  c.erase("msmix_version");
  Dataset data = load_data(c);
  prepare_data(data, c);
  Trainer trainer(c, data);
  const Checkpoint file = load_safetensors(weights);
  const auto state = trainer.model().state_dict();
  REQUIRE(state.size() == file.tensors.size());
  for (const auto& [name, t] : state) {
    CAPTURE(name);
    CHECK(t.to_vector() == file.tensors.at(name).to_vector());
  }
  // Seed 7 without weights starts elsewhere: the load is what made them equal.
  Config fresh = c;
  fresh.erase("weights");
  Trainer scratch(fresh, data);
  CHECK(scratch.model().state_dict().at("post_fusion_layer_1.weight").to_vector() !=
        file.tensors.at("post_fusion_layer_1.weight").to_vector());

  // Another shape or another backbone: one error naming the mis-shaped, missing and unexpected entries (after
  // the run's header line on stderr).
  auto check_error = [](const std::vector<std::string>& args, const std::vector<std::string>& parts) {
    Outcome o = cli(args);
    CAPTURE(o.err);
    CHECK(o.code == 1);
    CHECK(o.err.find("msmix: error: ") != std::string::npos);
    for (const std::string& part : parts)
      CHECK_MESSAGE(o.err.find(part) != std::string::npos, "lacks '" << part << "'");
  };
  check_error(std::vector<std::string>{"train", "--model", "tfn", "--data", "synthetic:mosi", "--device", "cpu",
                                       "--epochs", "1", "--out", (dir / "bad").string(), "--weights", weights} +
                  kTiny + std::vector<std::string>{"--set", "post_fusion_dim=6"},
              {"mis-shaped", "post_fusion_layer_1.weight"});
  check_error(std::vector<std::string>{"train", "--model", "lmf", "--data", "synthetic:mosi", "--device", "cpu",
                                       "--epochs", "1", "--out", (dir / "bad2").string(), "--weights", weights,
                                       "--set", "synthetic_scale=0.125", "--set", "synthetic_max_steps=4"},
              {"missing", "audio_factor", "unexpected", "post_fusion_layer_1.weight"});
  check_error({"train", "--model", "tfn", "--data", "synthetic:mosi", "--weights", (dir / "none.safetensors").string()},
              {"--weights", "no such file"});
  check_error({"train", "--resume", second, "--weights", weights}, {"drop", "--weights"});
  fs::remove_all(dir);
}
