// `msmix compare --jobs N`: child processes (msmix/child_process.h) and the compare that runs its trainings in
// them. The children are the msmix binary built beside this test binary; the tests that need it skip saying so
// when it is absent.
#include <omp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "msmix/child_process.h"
#include "msmix/commands.h"
#include "msmix/trainer.h"
#include "tests/files.h"
#include "tests/msmix/tiny_runs.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;
namespace fs = std::filesystem;

namespace {

// build*/msmix beside build*/test_msmix (`make test` builds both); "" when absent.
std::string msmix_beside_tests() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  const fs::path candidate = self.parent_path() / "msmix";
  return ::access(candidate.c_str(), X_OK) == 0 ? candidate.string() : "";
}
constexpr const char* kMissingMsmix = "skipped: no msmix binary beside the test binary (make builds it)";

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A run folder's log lines without the wall-clock field, the one thing allowed to differ between runs.
std::vector<std::string> log_without_seconds(const std::string& dir) { return without_seconds(RunDir(dir).read_log()); }

// Restores this process's OpenMP thread count at scope exit.
struct ThreadCount {
  int saved = omp_get_max_threads();
  explicit ThreadCount(int n) { omp_set_num_threads(n); }
  ~ThreadCount() { omp_set_num_threads(saved); }
};

// A shell script standing in for msmix (to make a child fail on purpose).
std::string script(const TempDir& tmp, const std::string& name, const std::string& body) {
  const std::string path = tmp.file(name);
  std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
  fs::permissions(path, fs::perms::owner_all);
  return path;
}

}  // namespace

TEST_CASE("child process: environment, output file, exit status, timeout and interrupt") {
  TempDir tmp("child");
  ChildSpec spec;
  spec.executable = "/bin/sh";
  spec.args = {"-c", "echo threads=$OMP_NUM_THREADS; echo on-stderr >&2; exit 7"};
  spec.env = {{"OMP_NUM_THREADS", "3"}};
  spec.output = tmp.file("out.log");
  const pid_t pid = spawn_child(spec);
  auto done = wait_any_child({pid}, 30);
  REQUIRE(done);
  CHECK(done->pid == pid);
  CHECK(exit_status_text(done->status) == "exited with status 7");
  CHECK(!exited_ok(done->status));
  CHECK(read_file(spec.output) == "threads=3\non-stderr\n");

  spec.args = {"-c", "echo again"};  // append keeps what was there
  spec.append = true;
  done = wait_any_child({spawn_child(spec)}, 30);
  REQUIRE(done);
  CHECK(exited_ok(done->status));
  CHECK(read_file(spec.output) == "threads=3\non-stderr\nagain\n");

  spec.args = {"-c", "kill -9 $$"};
  done = wait_any_child({spawn_child(spec)}, 30);
  REQUIRE(done);
  CHECK(exit_status_text(done->status).rfind("killed by signal 9", 0) == 0);

  // A child still running: the wait times out, SIGINT ends it, and it counts as interrupted.
  spec.args = {"-c", "exec sleep 30"};
  const pid_t sleeper = spawn_child(spec);
  CHECK(!wait_any_child({sleeper}, 0.05));
  interrupt_child(sleeper);
  done = wait_any_child({sleeper}, 30);
  REQUIRE(done);
  CHECK(ended_by_interrupt(done->status));

  CHECK_THROWS_WITH_AS(wait_any_child({sleeper}, 1), doctest::Contains("not a running child"), Error);
  spec.executable = tmp.file("no-such-program");
  CHECK_THROWS_WITH_AS(spawn_child(spec), doctest::Contains("no-such-program"), Error);
}

TEST_CASE("compare --jobs: invalid values and --help") {
  std::ostringstream out, err;
  for (const char* bad : {"0", "-1"}) {
    CAPTURE(bad);
    out.str(""), err.str("");
    const int code = run_cli({"compare", "--model", "tfn", "--data", "synthetic:mosi", "--jobs", bad,
                              "--out", (fs::temp_directory_path() / "msmix_no_such_compare").string()},
                             out, err);
    CAPTURE(err.str());
    CHECK(code == 2);  // a bad command line
    CHECK(err.str().rfind("msmix: error: ", 0) == 0);
    CHECK(err.str().find("--jobs") != std::string::npos);
    CHECK(err.str().find(std::string("must be at least 1 (got ") + bad + ")") != std::string::npos);
  }
  // Called directly (not through the command line), compare_command checks it too.
  CompareCommand command;
  command.jobs = 0;
  std::ostringstream progress_text;
  Progress progress(progress_text, false);
  CHECK_THROWS_WITH_AS(compare_command(command, progress, out), doctest::Contains("--jobs must be at least 1 (got 0)"),
                       Error);
  out.str("");
  CHECK(run_cli({"compare", "--help"}, out, err) == 0);
  CHECK(out.str().find("--jobs") != std::string::npos);
  CHECK(out.str().find("OMP_NUM_THREADS") != std::string::npos);
}

TEST_CASE("compare --jobs 2: every run bit-identical to --jobs 1 at one thread; logs in train.log") {
  const std::string msmix_binary = msmix_beside_tests();
  if (msmix_binary.empty()) {
    MESSAGE(kMissingMsmix);
    return;
  }
  TempDir tmp("jobs");
  CompareCommand command;
  command.base = tiny_spec("none", 1111, 2);
  command.methods = {"none", "msmix"};
  command.seeds = {1111, 1112};

  CompareResult one;
  {
    ThreadCount threads(1);
    command.out = tmp.file("one");
    std::ostringstream progress_text, out;
    Progress progress(progress_text, false);
    one = compare_command(command, progress, out);
  }
  CompareResult two;
  std::ostringstream progress_text, out;
  {
    ThreadCount threads(2);  // two jobs: each child gets OMP_NUM_THREADS = 2 / 2 = 1
    command.out = tmp.file("two");
    command.jobs = 2;
    command.executable = msmix_binary;
    Progress progress(progress_text, false);
    two = compare_command(command, progress, out);
  }
  CAPTURE(progress_text.str());
  REQUIRE(two.runs.size() == one.runs.size());
  for (size_t i = 0; i < one.runs.size(); ++i) {
    const RunRecord &a = one.runs[i], &b = two.runs[i];
    CAPTURE(a.method);
    CAPTURE(a.seed);
    CHECK(b.method == a.method);  // method-then-seed order kept
    CHECK(b.seed == a.seed);
    CHECK(b.best_epoch == a.best_epoch);
    CHECK(b.test == a.test);  // exact: same config, same thread count
    const std::string name = fmt::format("{}-{}", a.method, a.seed);
    CHECK(log_without_seconds(tmp.file("two/" + name)) == log_without_seconds(tmp.file("one/" + name)));
    CHECK(read_file(tmp.file("two/" + name + "/results.json")).find("\"finished\"") != std::string::npos);
    // The child's output: plain lines (stderr is a file, so no bar), its header and its epochs.
    const std::string log = read_file(tmp.file("two/" + name + "/train.log"));
    CHECK(log.find("epoch   2 |") != std::string::npos);
    CHECK(log.find('\r') == std::string::npos);
    CHECK(log.find("run directory: ") != std::string::npos);
    CHECK(!fs::exists(tmp.file("one/" + name + "/train.log")));
  }
  CHECK(two.markdown == one.markdown);
  CHECK(out.str().find(two.markdown) != std::string::npos);
  CHECK(fs::exists(tmp.file("two/curves.svg")));
  // One line as each run starts (with its thread count) and one as it ends.
  CHECK(progress_text.str().find("1 thread, log ") != std::string::npos);
  CHECK(progress_text.str().find("[4/4] msmix seed 1112: finished, best epoch ") != std::string::npos);
  CHECK(progress_text.str().find("epoch   1 |") == std::string::npos);  // the epochs stay in train.log

  // Again: every run is reused, nothing is spawned.
  std::ostringstream again_text, again_out;
  Progress again_progress(again_text, false);
  CompareResult again = compare_command(command, again_progress, again_out);
  CHECK(again.markdown == one.markdown);
  CHECK(again_text.str().find("reusing") != std::string::npos);
  CHECK(again_text.str().find("child ") == std::string::npos);

  // A stop request (Ctrl-C) with nothing left to train still gives the table; with runs left, it stops before
  // launching any and says how to continue.
  request_stop();
  std::ostringstream stopped_out;
  CHECK(!compare_command(command, again_progress, stopped_out).interrupted);
  CHECK(stopped_out.str().find(one.markdown) != std::string::npos);
  command.out = tmp.file("stopped");
  CompareResult stopped = compare_command(command, again_progress, stopped_out);
  clear_stop_request();
  CHECK(stopped.interrupted);
  CHECK(stopped_out.str().find("compare interrupted; rerun the same command to continue") != std::string::npos);
  CHECK(!fs::exists(tmp.file("stopped/none-1111")));
}

TEST_CASE("compare --jobs: a failing child stops new launches and is named with its exit status and log") {
  TempDir tmp("jobs_fail");
  CompareCommand command;
  command.base = tiny_spec("none", 1111, 1);
  command.methods = {"none"};
  command.seeds = {1, 2, 3, 4};
  command.jobs = 2;
  command.out = tmp.file("cmp");
  std::ostringstream progress_text, out;
  Progress progress(progress_text, false);

  command.executable = script(tmp, "fails.sh", "echo starting; echo \"boom: $1\" >&2; exit 3");
  try {
    compare_command(command, progress, out);
    FAIL("expected an error");
  } catch (const Error& e) {
    const std::string message = e.what();
    CAPTURE(message);
    CHECK(message.find("run none seed 1 ") != std::string::npos);
    CHECK(message.find("exited with status 3") != std::string::npos);
    CHECK(message.find(tmp.file("cmp/none-1/train.log")) != std::string::npos);
    CHECK(message.find("\n  starting\n  boom: train") != std::string::npos);  // the end of its log
    // Both failed; the first in the table's order is the one reported, whichever ended first.
    CHECK(message.find("\nalso failed: none seed 2 (log " + tmp.file("cmp/none-2/train.log") + ")") !=
          std::string::npos);
  }
  // Two ran at once and both failed; the other two were never started.
  CHECK(fs::exists(tmp.file("cmp/none-2/train.log")));
  CHECK(!fs::exists(tmp.file("cmp/none-3")));
  CHECK(!fs::exists(tmp.file("cmp/none-4")));

  // Exit 0 without a finished run is a failure too.
  command.executable = script(tmp, "quiet.sh", "exit 0");
  CHECK_THROWS_WITH_AS(compare_command(command, progress, out), doctest::Contains("wrote no results.json"), Error);
  command.executable = tmp.file("no-such-msmix");
  CHECK_THROWS_WITH_AS(compare_command(command, progress, out), doctest::Contains("cannot run"), Error);
}

TEST_CASE("compare --jobs 2: Ctrl-C leaves every run resumable, no process behind, and a rerun finishes") {
  const std::string msmix_binary = msmix_beside_tests();
  if (msmix_binary.empty()) {
    MESSAGE(kMissingMsmix);
    return;
  }
  TempDir tmp("jobs_int");
  const std::string dir = tmp.file("cmp");
  // Runs of 60 epochs (a few seconds each), so both are still training when the signal comes.
  RunSpec spec = tiny_spec("none", 1111, 60);
  spec.overrides.push_back("early_stop=60");
  std::vector<std::string> args = {"compare", "--model", "tfn", "--data", "synthetic:mosi", "--device", "cpu",
                                   "--mix", "none", "--seeds", "1,2", "--epochs", "60", "--jobs", "2", "--out", dir};
  for (const std::string& o : spec.overrides) args.insert(args.end(), {"--set", o});
  ChildSpec child;
  child.executable = msmix_binary;
  child.args = args;
  child.env = {{"OMP_NUM_THREADS", "2"}};
  child.output = tmp.file("compare.log");
  child.new_process_group = true;  // its own group: the SIGINT below is a terminal's Ctrl-C to it alone
  const pid_t compare = spawn_child(child);

  // Wait for both runs' first epoch, then Ctrl-C the whole group.
  const auto start = std::chrono::steady_clock::now();
  auto waited = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  while (waited() < 60 &&
         !(RunDir(dir + "/none-1").read_log().size() >= 1 && RunDir(dir + "/none-2").read_log().size() >= 1))
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(::kill(-compare, SIGINT) == 0);
  auto done = wait_any_child({compare}, 60);
  if (!done) {  // never leave a hung compare behind, even when the test fails
    ::kill(-compare, SIGKILL);
    done = wait_any_child({compare}, 10);
    FAIL("compare did not end within 60 s of Ctrl-C");
  }
  const std::string log = read_file(child.output);
  CAPTURE(log);
  CHECK(WIFEXITED(done->status));
  CHECK(WEXITSTATUS(done->status) == 130);
  CHECK(log.find("compare interrupted; rerun the same command to continue") != std::string::npos);
  errno = 0;
  CHECK(::kill(-compare, 0) == -1);  // no process left in its group: every child was waited for
  CHECK(errno == ESRCH);
  for (const char* run : {"/none-1", "/none-2"}) {
    const Json results = RunDir(dir + run).read_json("results.json");
    CHECK(results["status"] == "interrupted");
    CHECK(fs::exists(dir + run + "/last.safetensors"));
  }

  // The same command again continues both runs (resumed, not restarted) and prints the table.
  CompareCommand again;
  again.base = spec;
  again.methods = {"none"};
  again.seeds = {1, 2};
  again.jobs = 2;
  again.out = dir;
  again.executable = msmix_binary;
  std::ostringstream progress_text, out;
  Progress progress(progress_text, false);
  CompareResult r = compare_command(again, progress, out);
  CAPTURE(progress_text.str());
  CHECK(!r.interrupted);
  CHECK(r.runs.size() == 2);
  CHECK(progress_text.str().find("-> resuming ") != std::string::npos);
  for (const char* run : {"/none-1", "/none-2"}) {
    CHECK(RunDir(dir + run).read_json("results.json")["status"] == "finished");
    CHECK(read_file(dir + run + "/train.log").find("resuming ") != std::string::npos);  // appended to the first log
  }
}
