// Test helpers for files: a temporary folder removed at scope exit, and the shared real-data file when present.
#pragma once
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace msmix::testing {

// A fresh folder under the system temp dir (unique per process, tag and instance), removed at scope exit.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag = "tmp") {
    static int counter = 0;
    path = std::filesystem::temp_directory_path() /
           ("msmix_test_" + std::to_string(::getpid()) + "_" + tag + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {  // also after a test made it read-only
    std::error_code ec;
    std::filesystem::permissions(path, std::filesystem::perms::owner_all, std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path / name).string(); }
  std::vector<std::string> names() const {  // the entries in the folder, temp files included, sorted
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(path)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
};

// ../shared/data/mosi-utterance/mosi_utterance.pkl (real MOSI features, never committed) seen from the tests'
// folder, or $MSMIX_SHARED/data/...; "" when absent, and the caller skips saying so (kMissingSharedData).
inline std::string shared_mosi_utterance() {
  std::vector<std::string> candidates;
  if (const char* shared = std::getenv("MSMIX_SHARED"))
    candidates.push_back(std::string(shared) + "/data/mosi-utterance/mosi_utterance.pkl");
  candidates.push_back("../../shared/data/mosi-utterance/mosi_utterance.pkl");
  candidates.push_back("../shared/data/mosi-utterance/mosi_utterance.pkl");
  for (const std::string& c : candidates)
    if (std::ifstream(c).good()) return c;
  return "";
}
constexpr const char* kMissingSharedData =
    "skipped: mosi_utterance.pkl not found (set MSMIX_SHARED to the shared folder)";

}  // namespace msmix::testing
