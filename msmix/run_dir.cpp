#include "msmix/run_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/error.h"

namespace msmix {

namespace fs = std::filesystem;

namespace {

std::string errno_text() { return std::strerror(errno); }

// Closes the descriptor and removes the temp file unless commit() ran: an error leaves no litter.
class TempFile {
 public:
  explicit TempFile(const std::string& target) : target_(target) {
    static std::atomic<uint64_t> counter{0};
    fs::path t(target);
    fs::path dir = t.has_parent_path() ? t.parent_path() : fs::path(".");
    temp_ = (dir / fmt::format(".{}.tmp.{}.{}", t.filename().string(), ::getpid(), counter++)).string();
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    MSMIX_CHECK(fd_ >= 0, "write '{}': cannot create a temp file in '{}': {}", target_, dir.string(), errno_text());
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(temp_.c_str());
  }
  void write(const std::string& text) {
    size_t done = 0;
    while (done < text.size()) {
      ssize_t n = ::write(fd_, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;  // a Ctrl-C arriving mid-write is not a failure
      MSMIX_CHECK(n > 0, "write '{}': {}", target_, errno_text());
      done += size_t(n);
    }
  }
  void commit() {
    MSMIX_CHECK(::fsync(fd_) == 0, "write '{}': flushing: {}", target_, errno_text());
    ::close(fd_);
    fd_ = -1;
    MSMIX_CHECK(::rename(temp_.c_str(), target_.c_str()) == 0, "write '{}': cannot replace it: {}", target_,
                errno_text());
    committed_ = true;
  }

 private:
  std::string target_, temp_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace

void write_file_atomic(const std::string& path, const std::string& text) {
  TempFile temp(path);
  temp.write(text);
  temp.commit();
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  MSMIX_CHECK(in.good(), "cannot read '{}': {}", path, errno_text());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

Json read_json_file(const std::string& path) {
  const std::string text = read_text_file(path);
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {
    throw Error(fmt::format("'{}' is not valid JSON: {}", path, e.what()));
  }
}

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
