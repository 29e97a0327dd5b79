// Child processes for `msmix compare --jobs N`: start a program with an edited environment and its output in
// a file, wait for whichever of our children ends first, and say how it ended.
//
//   ChildSpec spec{"/proc/self/exe", {"train", "--resume", dir}, {{"OMP_NUM_THREADS", "1"}}, dir + "/train.log"};
//   pid_t pid = spawn_child(spec);
//   while (auto done = wait_any_child({pid}, 0.2)) ... ; exit_status_text(done->status)
//
// posix_spawn, not fork: forking a process whose OpenMP pool is running copies locks held by threads that do
// not exist in the child. Waiting polls our own pids (waitpid with WNOHANG) instead of waitpid(-1), so it never
// reaps a child that belongs to someone else in the same process (a test, a host program).
#pragma once
#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace msmix {

struct ChildSpec {
  std::string executable;                                    // path of the program
  std::string argv0;                                         // what `ps` shows; "" = the executable
  std::vector<std::string> args;                             // argv[1..]
  std::vector<std::pair<std::string, std::string>> env;      // set over a copy of this process's environment
  std::string output;                                        // stdout and stderr go here; "" = inherit ours
  bool append = false;                                       // append to `output` instead of truncating it
  bool new_process_group = false;                            // its own process group (the terminal's Ctrl-C misses it)
};

// Starts the child (stdin from /dev/null) and returns its pid; an Error names the executable, the output file
// and the reason when it cannot start.
pid_t spawn_child(const ChildSpec& spec);

struct ChildExit {
  pid_t pid = 0;
  int status = 0;  // waitpid's status word
};
// Waits until one of `pids` ends and reaps it; nullopt after `max_seconds` (< 0: no limit) with none ended.
// A pid that is not a child of this process (or was already reaped) is an Error naming it.
std::optional<ChildExit> wait_any_child(const std::vector<pid_t>& pids, double max_seconds);

// "exited with status 1", "killed by signal 9 (Killed)".
std::string exit_status_text(int status);
bool exited_ok(int status);           // exited with status 0
bool ended_by_interrupt(int status);  // exit status 130 (msmix after Ctrl-C) or killed by SIGINT

// Sends SIGINT to one child (msmix stops at the end of its step and leaves its run resumable).
void interrupt_child(pid_t pid);

}  // namespace msmix
