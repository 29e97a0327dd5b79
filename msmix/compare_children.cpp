#include "msmix/compare_children.h"

#include <fmt/format.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <map>

#include "engine/error.h"
#include "msmix/child_process.h"
#include "msmix/run_config.h"
#include "msmix/run_dir.h"
#include "msmix/trainer.h"

namespace msmix {

namespace fs = std::filesystem;

namespace {

constexpr const char* kChildLogFile = "train.log";

// The `msmix train` command line that builds exactly run.config: the compare's own options plus this run's mix
// and seed (`--key=value`, so a value starting with '-' is never read as an option).
std::vector<std::string> child_train_args(const RunSpec& base, const PlannedRun& run) {
  if (run.resume) return {"train", "--resume=" + run.dir};
  std::vector<std::string> args = {"train",
                                   "--model=" + base.model,
                                   "--data=" + base.data,
                                   "--mix=" + run.method,
                                   fmt::format("--seed={}", run.seed),
                                   "--device=" + base.device,
                                   "--out=" + run.dir,
                                   "--overwrite"};
  if (!base.dataset.empty()) args.push_back("--dataset=" + base.dataset);
  if (base.max_epochs > 0) args.push_back(fmt::format("--epochs={}", base.max_epochs));
  for (const std::string& o : base.overrides) args.push_back("--set=" + o);
  if (!base.weights.empty()) args.push_back("--weights=" + base.weights);
  return args;
}

// The last `count` lines of a text file, each indented (for an error message); "" when unreadable.
std::string tail_lines(const std::string& path, size_t count) {
  std::string text;
  try {
    text = read_text_file(path);
  } catch (const std::exception&) {
    return "";
  }
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  std::string out;
  for (size_t i = lines.size() > count ? lines.size() - count : 0; i < lines.size(); ++i) out += "\n  " + lines[i];
  return out;
}

// "" when the child left a finished run with the expected config, else what is wrong with it.
std::string check_child_run(const PlannedRun& run) {
  RunDir dir(run.dir);
  if (!dir.has(kResultsFile)) return fmt::format("it wrote no {}", kResultsFile);
  const std::string status = dir.read_results()["status"];
  if (status != "finished") return fmt::format("its {} says status '{}', not 'finished'", kResultsFile, status);
  return saved_config_mismatch(run.dir, run.config);
}

}  // namespace

bool train_in_children(const CompareCommand& command, const std::vector<PlannedRun>& runs, Progress& progress) {
  // /proc/self/exe runs this very binary even when a rebuild has replaced the file since; `ps` shows its path.
  const std::string executable = command.executable.empty() ? "/proc/self/exe" : command.executable;
  MSMIX_CHECK(::access(executable.c_str(), X_OK) == 0, "compare --jobs {}: cannot run '{}' ({})", command.jobs,
              executable, std::strerror(errno));
  std::error_code ec;
  const std::string shown = command.executable.empty() ? fs::read_symlink(executable, ec).string() : executable;
  const int threads = std::max(1, omp_get_max_threads() / command.jobs);
  struct Active {
    size_t index;
    std::chrono::steady_clock::time_point start;
  };
  std::map<pid_t, Active> active;
  std::map<size_t, std::string> failures;  // by run index: reported in the table's order, whichever ended first
  bool interrupted = false, child_interrupted = false;
  size_t next = 0;
  auto tag = [&](size_t i) {
    return fmt::format("[{}/{}] {} seed {}", i + 1, runs.size(), runs[i].method, runs[i].seed);
  };
  auto ended = [&](pid_t pid, int status) {
    const Active a = active.at(pid);
    active.erase(pid);
    const PlannedRun& run = runs[a.index];
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - a.start).count();
    const std::string log = RunDir(run.dir).file(kChildLogFile);
    if (ended_by_interrupt(status)) {
      interrupted = child_interrupted = true;
      progress.message(fmt::format("{}: interrupted after {:.1f} s (resumable)", tag(a.index), seconds));
      return;
    }
    std::string problem = exited_ok(status) ? check_child_run(run) : exit_status_text(status);
    if (problem.empty()) {
      const Json results = RunDir(run.dir).read_results();
      progress.message(fmt::format("{}: finished, best epoch {}, {:.1f} s", tag(a.index),
                                   results.value("best_epoch", int64_t(0)), seconds));
      return;
    }
    progress.message(fmt::format("{}: failed ({}); log {}", tag(a.index), problem, log));
    const std::string tail = tail_lines(log, 10);
    failures[a.index] = fmt::format("compare: run {} seed {} ({}) failed: {}; its log {}{}", run.method, run.seed,
                                    run.dir, problem, log, tail.empty() ? "" : " ends with:" + tail);
  };
  try {
    for (;;) {
      if (stop_requested()) interrupted = true;
      while (!interrupted && failures.empty() && active.size() < size_t(command.jobs) && next < runs.size()) {
        const size_t i = next++;
        const PlannedRun& run = runs[i];
        if (run.reuse) {
          progress.message(run.label + " -> reusing " + run.dir);
          continue;
        }
        RunDir(run.dir).create();
        ChildSpec spec;
        spec.executable = executable;
        spec.argv0 = shown;
        spec.args = child_train_args(command.base, run);
        spec.env = {{"OMP_NUM_THREADS", std::to_string(threads)}};
        spec.output = RunDir(run.dir).file(kChildLogFile);
        spec.append = run.resume;  // a resumed run's log continues the earlier session's
        const pid_t pid = spawn_child(spec);
        active[pid] = {i, std::chrono::steady_clock::now()};
        progress.message(fmt::format("{} -> {}{} (child {}, {} thread{}, log {})", run.label,
                                     run.resume ? "resuming " : "", run.dir, pid, threads, threads == 1 ? "" : "s",
                                     spec.output));
      }
      if (active.empty()) break;
      std::vector<pid_t> pids;
      for (const auto& [pid, a] : active) pids.push_back(pid);
      if (auto done = wait_any_child(pids, 0.2)) ended(done->pid, done->status);
    }
  } catch (...) {
    // Something failed in this process: stop the children (their runs stay resumable) and reap them all.
    for (const auto& [pid, a] : active) interrupt_child(pid);
    for (const auto& [pid, a] : active) {
      try {
        wait_any_child({pid}, -1);
      } catch (const std::exception&) {
      }
    }
    throw;
  }
  if (!failures.empty()) {
    std::string message = failures.begin()->second;
    for (auto it = std::next(failures.begin()); it != failures.end(); ++it)
      message += fmt::format("\nalso failed: {} seed {} (log {})", runs[it->first].method, runs[it->first].seed,
                             RunDir(runs[it->first].dir).file(kChildLogFile));
    throw Error(message);
  }
  // A Ctrl-C that came after the last launch, with every child finishing its run anyway, left nothing to redo.
  const bool left =
      std::any_of(runs.begin() + std::ptrdiff_t(next), runs.end(), [](const PlannedRun& r) { return !r.reuse; });
  return interrupted && (child_interrupted || left);
}

}  // namespace msmix
