// A run directory: everything one training run leaves behind, so it can be read, compared and resumed.
//
//   runs/NAME/config.json       everything needed to reproduce the run (model, data, seed, device, the full
//                               hyperparameter config after --set overrides, version)
//   runs/NAME/log.jsonl         one JSON object per finished epoch (epoch, losses, valid metrics, lr, seconds)
//   runs/NAME/best.safetensors  the backbone's weights at the best validation loss (MMSA state-dict names)
//   runs/NAME/results.json      test metrics of the best weights (MMSA's names), or status "interrupted"
//   runs/NAME/last.safetensors  resume point, rewritten at each epoch end: model, mixer, optimizer state
//   runs/NAME/state.json        the rest of the resume point: epoch, best loss, RNG offsets, scheduler
//
// Every write goes to a temp file in the same folder, is flushed, then renamed over the target, so a crash
// or Ctrl-C never leaves a half-written file behind.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace msmix {

using Json = nlohmann::ordered_json;  // keys keep their insertion order (log lines, results)

constexpr const char* kConfigFile = "config.json";
constexpr const char* kLogFile = "log.jsonl";
constexpr const char* kResultsFile = "results.json";
constexpr const char* kBestWeightsFile = "best.safetensors";
constexpr const char* kLastCheckpointFile = "last.safetensors";
constexpr const char* kStateFile = "state.json";

// Writes `text` to `path` atomically (temp file + fsync + rename). The folder must exist.
void write_file_atomic(const std::string& path, const std::string& text);
// The whole file; an error names the path and the reason.
std::string read_text_file(const std::string& path);
// Parses a JSON file; an error names the path and the parse error. J: Json (keys in file order) or
// nlohmann::json (a run's config.json, read as the Config it was written from).
template <class J = Json>
J read_json_file(const std::string& path);
// Doubles that JSON cannot hold (inf, nan) travel as strings ("inf", "nan"); from_json_double reads both forms.
Json json_double(double x);
double from_json_double(const Json& j);

class RunDir {
 public:
  explicit RunDir(std::string path);

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const;  // path/name
  bool has(const std::string& name) const;          // path/name exists
  void create() const;                              // mkdir -p; an error says why it failed

  void write_json(const std::string& name, const Json& value) const;  // pretty-printed, atomic
  Json read_json(const std::string& name) const;
  // results.json, checked for what its readers take from it: an object with a "status" string, and when the
  // run finished, its "best_epoch" (an integer) and "test" metrics (an object). Anything else (a file edited
  // or damaged by hand) is an error naming the file and the field, not an abort deep inside a reader.
  Json read_results() const;

  // log.jsonl: one compact JSON object per line, each with its "epoch" (an integer) and "seconds" (a number).
  // read_log() is empty when the file is absent; a line that is not such an object is an error naming the
  // line. write_log() rewrites the whole file atomically.
  std::vector<Json> read_log() const;
  void write_log(const std::vector<Json>& lines) const;

 private:
  std::string path_;
};

}  // namespace msmix
