#include "data/mmsa_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "data/pickle_writer.h"
#include "engine/error.h"

namespace msmix {

namespace fs = std::filesystem;

namespace {

void pickle_split(const Split& s, PickleWriter& w) {
  w.begin_dict();
  if (!s.ids.empty()) w.str("id"), w.unicode_array(s.ids);
  if (!s.raw_text.empty()) w.str("raw_text"), w.unicode_array(s.raw_text);
  w.str("text"), w.float32_array(s.text);
  if (s.text_bert.defined()) w.str("text_bert"), w.float32_array(s.text_bert);
  w.str("audio"), w.float32_array(s.audio);
  w.str("vision"), w.float32_array(s.vision);
  if (!s.audio_lengths.empty()) w.str("audio_lengths"), w.int_list(s.audio_lengths);
  if (!s.vision_lengths.empty()) w.str("vision_lengths"), w.int_list(s.vision_lengths);
  w.str("regression_labels"), w.float32_array(s.labels);
  const Tensor* unimodal[] = {&s.labels_t, &s.labels_a, &s.labels_v};
  const char* keys[] = {"regression_labels_T", "regression_labels_A", "regression_labels_V"};
  for (int m = 0; m < 3; ++m)
    if (unimodal[m]->defined()) w.str(keys[m]), w.float32_array(*unimodal[m]);
  w.end_dict();
}

// A file descriptor on a temp file beside the target; removed unless commit() renamed it into place.
class TempFile {
 public:
  explicit TempFile(const std::string& target) : target_(target) {
    static std::atomic<uint64_t> counter{0};
    const fs::path t(target);
    const fs::path dir = t.has_parent_path() ? t.parent_path() : fs::path(".");
    temp_ = (dir / fmt::format(".{}.tmp.{}.{}", t.filename().string(), ::getpid(), counter++)).string();
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    MSMIX_CHECK(fd_ >= 0, "write_mmsa: cannot write '{}': cannot create a file in '{}': {}", target_, dir.string(),
                std::strerror(errno));
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(temp_.c_str());
  }
  void write(const char* data, size_t size) {
    while (size > 0) {
      ssize_t n = ::write(fd_, data, size);
      if (n < 0 && errno == EINTR) continue;
      MSMIX_CHECK(n > 0, "write_mmsa: writing '{}': {}", target_, std::strerror(errno));
      data += n, size -= size_t(n);
    }
  }
  void commit() {
    MSMIX_CHECK(::fsync(fd_) == 0, "write_mmsa: flushing '{}': {}", target_, std::strerror(errno));
    MSMIX_CHECK(::close(fd_) == 0, "write_mmsa: closing '{}': {}", target_, std::strerror(errno));
    fd_ = -1;
    MSMIX_CHECK(::rename(temp_.c_str(), target_.c_str()) == 0, "write_mmsa: cannot replace '{}': {}", target_,
                std::strerror(errno));
    committed_ = true;
  }

 private:
  std::string target_, temp_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace

void pickle_mmsa(const Dataset& dataset, PickleWriter& writer) {
  writer.begin_dict();
  for (const Split* s : {&dataset.train, &dataset.valid, &dataset.test}) {
    writer.str(s->name);
    pickle_split(*s, writer);
  }
  writer.end_dict();
}

void write_mmsa(const Dataset& dataset, const std::string& path) {
  MSMIX_CHECK(!path.empty(), "write_mmsa: the output path is empty");
  std::error_code ec;
  MSMIX_CHECK(!fs::is_directory(path, ec), "write_mmsa: cannot write '{}': it is a directory", path);
  dataset.validate();  // a file our own reader would refuse is never written
  TempFile file(path);
  PickleWriter writer([&](const char* data, size_t size) { file.write(data, size); });
  pickle_mmsa(dataset, writer);
  writer.finish();
  file.commit();
}

}  // namespace msmix
