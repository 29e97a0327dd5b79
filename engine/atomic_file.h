// A file that appears whole or not at all: bytes go to a temp file beside the target (".<name>.tmp.<pid>.<n>"),
// and commit() flushes it to disk and renames it over the target (then syncs the folder, so the rename itself
// survives a crash). Destroyed without commit() (an exception on the way), it removes the temp file: an
// interrupted write never leaves a partial target or litter. Used for checkpoints, run files and datasets.
//
//   AtomicFile file(path, "save_safetensors");   // `what` starts every error message
//   file.write(header.data(), header.size());
//   file.commit();
#pragma once
#include <cstddef>
#include <string>

namespace msmix {

class AtomicFile {
 public:
  AtomicFile(std::string path, std::string what);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t bytes);  // all of it (retries short writes and EINTR)
  void commit();                               // fsync, close, rename over the target, sync the folder

 private:
  std::string path_, what_, dir_, temp_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace msmix
