#include "engine/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "engine/error.h"

namespace msmix {
namespace {

std::string errno_text() { return std::strerror(errno); }

}  // namespace

AtomicFile::AtomicFile(std::string path, std::string what) : path_(std::move(path)), what_(std::move(what)) {
  namespace fs = std::filesystem;
  const fs::path target(path_);
  dir_ = target.parent_path().empty() ? "." : target.parent_path().string();
  static std::atomic<unsigned> counter{0};
  for (int attempt = 0; fd_ < 0; ++attempt) {  // O_EXCL: never reuse a name another writer holds
    temp_ = (fs::path(dir_) / fmt::format(".{}.tmp.{}.{}", target.filename().string(), ::getpid(), counter++)).string();
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0 && (errno != EEXIST || attempt > 100)) {
      const bool missing = errno == ENOENT;
      throw Error(fmt::format("{}: cannot create a file in folder '{}' (writing {}): {}{}", what_, dir_, path_,
                              errno_text(), missing ? " (the folder does not exist)" : ""));
    }
  }
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_.c_str());
}

void AtomicFile::write(const void* data, size_t bytes) {
  auto* p = static_cast<const unsigned char*>(data);
  while (bytes > 0) {
    const ssize_t put = ::write(fd_, p, std::min<size_t>(bytes, 1 << 30));
    if (put < 0 && errno == EINTR) continue;  // a Ctrl-C arriving mid-write is not a failure
    MSMIX_CHECK(put > 0, "{}: writing {}: {}", what_, path_, errno_text());
    p += put, bytes -= size_t(put);
  }
}

void AtomicFile::commit() {
  MSMIX_CHECK(::fsync(fd_) == 0, "{}: flushing {}: {}", what_, path_, errno_text());
  const int fd = fd_;
  fd_ = -1;
  MSMIX_CHECK(::close(fd) == 0, "{}: closing {}: {}", what_, path_, errno_text());
  MSMIX_CHECK(::rename(temp_.c_str(), path_.c_str()) == 0, "{}: cannot replace '{}': {}", what_, path_,
              errno_text());
  committed_ = true;
  // Persist the rename itself; some filesystems refuse fsync on a folder, which is harmless here.
  const int dir_fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    (void)::fsync(dir_fd);
    ::close(dir_fd);
  }
}

}  // namespace msmix
