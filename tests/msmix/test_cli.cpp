// The command line through run_cli (main() without the process): exit codes, "msmix: error: ..." messages
// for bad input, --help on every subcommand, and tiny end-to-end train / eval / data runs.
#include <unistd.h>

#include <filesystem>
#include <sstream>

#include "msmix/commands.h"
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
  for (const char* sub : {"train", "eval", "compare", "data", "info"}) {
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
