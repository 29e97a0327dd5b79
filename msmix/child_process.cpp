#include "msmix/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>
#include <thread>

#include "engine/error.h"

extern char** environ;

namespace msmix {

namespace {

// This process's environment with spec.env set over it, as "KEY=VALUE" strings.
std::vector<std::string> child_environment(const std::vector<std::pair<std::string, std::string>>& env) {
  std::set<std::string> replaced;
  for (const auto& [key, value] : env) replaced.insert(key);
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e) {
    const std::string entry = *e;
    if (!replaced.count(entry.substr(0, entry.find('=')))) out.push_back(entry);
  }
  for (const auto& [key, value] : env) out.push_back(key + "=" + value);
  return out;
}

std::vector<char*> c_strings(std::vector<std::string>& items) {
  std::vector<char*> out;
  for (std::string& s : items) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// The attribute and file-action objects, destroyed on every path out of spawn_child.
struct SpawnSetup {
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  SpawnSetup() {
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&actions);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
};

}  // namespace

pid_t spawn_child(const ChildSpec& spec) {
  MSMIX_CHECK(!spec.executable.empty(), "spawn: no executable given");
  SpawnSetup setup;
  // An empty signal mask and default SIGINT in the child, whatever this process blocks or handles: the child
  // installs its own Ctrl-C handler.
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (spec.new_process_group) {
    flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setpgroup(&setup.attr, 0);
  }
  posix_spawnattr_setflags(&setup.attr, flags);
  posix_spawnattr_setsigmask(&setup.attr, &none);
  posix_spawnattr_setsigdefault(&setup.attr, &defaults);
  posix_spawn_file_actions_addopen(&setup.actions, 0, "/dev/null", O_RDONLY, 0);
  if (!spec.output.empty()) {
    const int mode = O_WRONLY | O_CREAT | (spec.append ? O_APPEND : O_TRUNC);
    posix_spawn_file_actions_addopen(&setup.actions, 1, spec.output.c_str(), mode, 0644);
    posix_spawn_file_actions_adddup2(&setup.actions, 1, 2);
  }

  std::vector<std::string> argv_items = {spec.argv0.empty() ? spec.executable : spec.argv0};
  argv_items.insert(argv_items.end(), spec.args.begin(), spec.args.end());
  std::vector<std::string> env_items = child_environment(spec.env);
  std::vector<char*> argv = c_strings(argv_items), envp = c_strings(env_items);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, spec.executable.c_str(), &setup.actions, &setup.attr, argv.data(), envp.data());
  MSMIX_CHECK(rc == 0, "cannot start '{}'{}: {}", spec.executable,
              spec.output.empty() ? std::string() : " with its output in '" + spec.output + "'", std::strerror(rc));
  return pid;
}

std::optional<ChildExit> wait_any_child(const std::vector<pid_t>& pids, double max_seconds) {
  MSMIX_CHECK(!pids.empty(), "wait: no child to wait for");
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    for (pid_t pid : pids) {
      int status = 0;
      const pid_t got = waitpid(pid, &status, WNOHANG);
      if (got == pid) return ChildExit{pid, status};
      MSMIX_CHECK(got == 0 || errno == EINTR, "wait: process {} is not a running child of this process ({})", pid,
                  std::strerror(errno));
    }
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (max_seconds >= 0 && waited >= max_seconds) return std::nullopt;
    // 20 ms: short next to any training run, long enough to cost no measurable CPU.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::string exit_status_text(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = strsignal(sig);
    return fmt::format("killed by signal {} ({})", sig, name ? name : "unknown");
  }
  return fmt::format("ended with wait status {}", status);
}

bool exited_ok(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

bool ended_by_interrupt(int status) {
  return (WIFEXITED(status) && WEXITSTATUS(status) == 130) || (WIFSIGNALED(status) && WTERMSIG(status) == SIGINT);
}

void interrupt_child(pid_t pid) {
  if (pid > 0) kill(pid, SIGINT);
}

}  // namespace msmix
