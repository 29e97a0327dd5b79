#include "msmix/run_dir.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/atomic_file.h"
#include "engine/error.h"

namespace msmix {

namespace fs = std::filesystem;

namespace {

std::string errno_text() { return std::strerror(errno); }

}  // namespace

void write_file_atomic(const std::string& path, const std::string& text) {
  AtomicFile file(path, "write");
  file.write(text.data(), text.size());
  file.commit();
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  MSMIX_CHECK(in.good(), "cannot read '{}': {}", path, errno_text());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

template <class J>
J read_json_file(const std::string& path) {
  const std::string text = read_text_file(path);
  try {
    return J::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("'{}' is not valid JSON: {}", path, e.what()));
  }
}
template Json read_json_file<Json>(const std::string& path);
template nlohmann::json read_json_file<nlohmann::json>(const std::string& path);

Json json_double(double x) { return std::isfinite(x) ? Json(x) : Json(fmt::format("{}", x)); }
double from_json_double(const Json& j) { return j.is_string() ? std::stod(j.get<std::string>()) : j.get<double>(); }

RunDir::RunDir(std::string path) : path_(std::move(path)) {
  MSMIX_CHECK(!path_.empty(), "run directory: the path is empty");
}

std::string RunDir::file(const std::string& name) const { return (fs::path(path_) / name).string(); }

bool RunDir::has(const std::string& name) const {
  std::error_code ec;
  return fs::exists(file(name), ec);
}

void RunDir::create() const {
  std::error_code ec;
  fs::create_directories(path_, ec);
  MSMIX_CHECK(!ec && fs::is_directory(path_), "run directory '{}': cannot create it: {}", path_,
              ec ? ec.message() : std::string("a file of that name exists"));
}

void RunDir::write_json(const std::string& name, const Json& value) const {
  write_file_atomic(file(name), value.dump(2) + "\n");
}

Json RunDir::read_json(const std::string& name) const { return read_json_file(file(name)); }

Json RunDir::read_results() const {
  const std::string path = file(kResultsFile);
  Json r = read_json_file(path);
  auto check = [&](bool ok, const char* what) {
    MSMIX_CHECK(ok, "'{}' is not the results file of a msmix run: {}; move the run folder away to train it again",
                path, what);
  };
  check(r.is_object(), "it is not a JSON object");
  check(r.contains("status") && r["status"].is_string(), "no \"status\" string");
  if (r["status"] == "finished") {
    check(r.contains("best_epoch") && r["best_epoch"].is_number_integer(), "a finished run without its \"best_epoch\"");
    check(r.contains("test") && r["test"].is_object(), "a finished run without its \"test\" metrics");
  }
  return r;
}

std::vector<Json> RunDir::read_log() const {
  std::vector<Json> lines;
  if (!has(kLogFile)) return lines;
  std::istringstream in(read_text_file(file(kLogFile)));
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    Json value = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    MSMIX_CHECK(!value.is_discarded() && value.is_object(), "'{}' line {} is not a JSON object: {}", file(kLogFile),
                number, line.substr(0, 80));
    MSMIX_CHECK(value.contains("epoch") && value["epoch"].is_number_integer() && value.contains("seconds") &&
                    value["seconds"].is_number(),
                "'{}' line {} is not an epoch line (an \"epoch\" integer and its \"seconds\"): {}", file(kLogFile),
                number, line.substr(0, 80));
    lines.push_back(std::move(value));
  }
  return lines;
}

void RunDir::write_log(const std::vector<Json>& lines) const {
  std::string text;
  for (const Json& line : lines) text += line.dump() + "\n";
  write_file_atomic(file(kLogFile), text);
}

}  // namespace msmix
