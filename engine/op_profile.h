// Where the time goes, by named range: a recorder that the ProfileRanges of engine/profile.h (every op's
// forward, every autograd node's backward, the trainer's phases) feed while it is started on the calling
// thread. Each (phase, range name) gets its calls and its self time: its own time less that of the ranges
// nested in it, so the self times add up to the time spent inside the outermost ranges. The phase is the name
// of the range one level below the outermost ("forward", "backward", "clip_grad_norm", "optimizer step" inside
// the trainer's "train step"), or the outermost range's own name.
//
//   OpProfile profile;                 // the clock: steady_clock
//   profile.start();                   // this thread's ranges are recorded from here
//   ... training steps ...
//   profile.stop();
//   for (const OpProfile::Entry& e : profile.entries()) ...   // by self time, largest first
//
// On a GPU the ops only queue kernels: with synchronize_cuda, every range waits for the GPU when it opens and
// when it closes, so a range's time is its kernels' time (and a step gets slower: use it to see where the time
// goes, not to time the step); not while a CUDA graph is being captured (a capture cannot wait), where the
// ranges then time only the host's work. Ranges opened before start() are not recorded, nor is their end.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace msmix {

class OpProfile {
 public:
  struct Entry {
    std::string phase, name;
    int64_t calls = 0;
    double self_ms = 0;
  };
  // One range of a traced step, in the order the ranges opened: its nesting depth (0: outermost) and its
  // inclusive time (NaN if it was still open at stop()).
  struct Event {
    int depth;
    std::string name;
    double ms;
  };

  // now_ms: the clock, in milliseconds (tests pass their own).
  explicit OpProfile(std::function<double()> now_ms = nullptr);
  ~OpProfile();
  OpProfile(const OpProfile&) = delete;
  OpProfile& operator=(const OpProfile&) = delete;

  // Records this thread's ranges until stop() (one profile per thread at a time; start() throws otherwise).
  // trace_outermost: also keep, range by range, the first that many outermost ranges (a training step each).
  void start(bool synchronize_cuda = false, int64_t trace_outermost = 0);
  void stop();  // ranges still open are dropped

  std::vector<Entry> entries() const;  // by self time, largest first; ties by phase, then name
  double total_ms() const;             // the time inside the outermost ranges: the sum of every self time
  const std::vector<Event>& trace() const { return trace_; }  // the traced ranges, in opening order

  // The profile recording on this thread, or null (what ProfileRange checks).
  static OpProfile* active();
  void enter(const char* name);
  void leave();

 private:
  struct Open {
    const char* name;
    double start_ms, nested_ms;  // nested_ms: the time of the ranges closed inside it
    int64_t event;               // its place in trace_, or -1
  };
  std::function<double()> now_ms_;
  bool sync_ = false;
  std::vector<Open> open_;
  std::map<std::pair<std::string, std::string>, Entry> entries_;
  double total_ms_ = 0;
  int64_t trace_left_ = 0;  // outermost ranges still to trace (the one open counts until it closes)
  std::vector<Event> trace_;
};

}  // namespace msmix
