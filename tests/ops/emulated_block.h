// A CUDA grid emulated on the CPU, for the kernel bodies of ops/cuda/*_block.h (the Block of
// ops/cuda/block_code.h). Each CUDA thread of a block is a fiber (ucontext) with its own stack, all run in the
// calling thread, so one block's threads take turns: a thread runs until it waits at a barrier (__syncthreads,
// or its warp's shuffle), and the last to arrive releases the others. The blocks run one after another. The
// block's shared memory starts filled with NaN, so a read before a write shows in the results.
//
// It also checks the rules the hardware leaves undefined: every thread of a block reaches each sync, every lane
// of a warp each shuffle. A thread that leaves the kernel while others wait, or threads that wait at different
// barriers (no thread can run), make emulate_grid throw msmix::Error naming the block and the barrier.
//
// Fibers, not std::threads: a warp shuffle is a barrier of 32 threads, and the attention kernels make hundreds
// per row; switching fibers costs a fraction of a microsecond, waking OS threads many microseconds.
#pragma once
#include <ucontext.h>

#include <cmath>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "engine/error.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define MSMIX_FIBER_ASAN 1
#endif

namespace msmix::testing {

class EmulatedBlockRun;

// block_code.h's Block, for one emulated thread.
struct EmulatedBlock {
  int b, grid, t, n;
  EmulatedBlockRun* run;
  int block() const { return b; }
  int blocks() const { return grid; }
  int thread() const { return t; }
  int threads() const { return n; }
  void sync() const;
  float shfl_xor(float v, int mask) const;
  double shfl_xor(double v, int mask) const;
  float shfl(float v, int src_lane) const;
  float* shared() const;
};

// One block's threads as fibers, run to completion by run().
class EmulatedBlockRun {
 public:
  EmulatedBlockRun(int block, int grid, int threads, size_t shared_floats)
      : block_(block), grid_(grid), threads_(threads), shared_(shared_floats, NAN), fibers_(size_t(threads)) {
    barriers_.emplace_back(threads, "__syncthreads of block " + std::to_string(block));
    for (int w = 0; w * 32 < threads; ++w) {
      const int lanes = threads - 32 * w < 32 ? threads - 32 * w : 32;
      barriers_.emplace_back(lanes, "a shuffle of warp " + std::to_string(w) + " of block " + std::to_string(block));
      slots_.emplace_back(2 * size_t(lanes), NAN);
    }
  }

  // Runs body(EmulatedBlock) on every thread; throws msmix::Error on a broken barrier rule, and rethrows what
  // a body threw.
  template <class Body>
  void run(Body& body) {
    body_ = [](void* b, const EmulatedBlock& blk) { (*static_cast<Body*>(b))(blk); };
    body_arg_ = &body;
    for (Fiber& f : fibers_) prepare(f);
    // Resume a runnable fiber until every thread is done; a fiber that must wait passes on to the next
    // runnable one itself, and comes back here when none is left or it has finished.
    while (error_.empty()) {
      const int next = next_runnable(threads_ - 1);
      if (next < 0) {
        if (done_ < threads_) fail(stuck_message());
        break;
      }
      switch_to(next, &scheduler_);
    }
    if (thrown_) std::rethrow_exception(thrown_);
    if (!error_.empty()) throw Error("emulated kernel: " + error_);
  }

  // Thread `thread` arrives at barrier `barrier`: the last to arrive releases the others and goes on; the
  // others pass on to the next runnable fiber. After an error nothing is resumed again.
  void wait(int thread, int barrier) {
    Barrier& bar = barriers_[size_t(barrier)];
    if (bar.left > 0) fail("a thread waits at " + bar.name + " after another left the kernel");
    if (error_.empty() && ++bar.arrived == bar.n) {
      bar.arrived = 0;
      for (int t : bar.waiting) fibers_[size_t(t)].waiting = false;
      bar.waiting.clear();
      return;
    }
    if (error_.empty()) {
      bar.waiting.push_back(thread);
      fibers_[size_t(thread)].waiting = true;
    }
    switch_to(next_runnable(thread), &fibers_[size_t(thread)].context, thread);
  }

  // Two slot rows a warp uses in turn: a row is written again two shuffles later, after every lane has passed
  // the next shuffle's barrier, so after all have read it.
  // xor: the value of lane ^ arg (shfl_xor); else of lane arg (shfl). A lane outside the warp gives NaN.
  double shuffle(int thread, double v, int arg, bool xor_lane = true) {
    const int warp = thread / 32, lane = thread % 32;
    std::vector<double>& slots = slots_[size_t(warp)];
    const size_t lanes = slots.size() / 2, row = lanes * size_t(shuffles_[size_t(thread)]++ % 2);
    slots[row + size_t(lane)] = v;
    wait(thread, 1 + warp);
    const size_t from = size_t(xor_lane ? lane ^ arg : arg);
    return from < lanes ? slots[row + from] : NAN;
  }

  float* shared() { return shared_.data(); }

 private:
  static constexpr size_t kStackBytes = 256 * 1024;  // the kernel bodies' register arrays; ASan's redzones

  struct Fiber {
    ucontext_t context;
    std::unique_ptr<char[]> stack;
    bool waiting = false, done = false;
  };
  struct Barrier {
    Barrier(int threads, std::string what) : n(threads), name(std::move(what)) {}
    int n;
    std::string name;
    int arrived = 0, left = 0;  // left: threads that have finished the kernel
    std::vector<int> waiting;
  };

  static thread_local EmulatedBlockRun* current_;

  // A fiber that starts in entry() on its own stack and returns to the scheduler. Not inlined: getcontext
  // returns like setjmp, and the caller's loop variables would be flagged as clobbered.
  __attribute__((noinline)) void prepare(Fiber& f) {
    f.stack.reset(new char[kStackBytes]);
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = f.stack.get();
    f.context.uc_stack.ss_size = kStackBytes;
    f.context.uc_link = &scheduler_;
    makecontext(&f.context, &EmulatedBlockRun::entry, 0);
  }

  static void entry() {
    EmulatedBlockRun& self = *current_;
    const int t = self.running_;
    self.arrived_on_fiber();
    try {
      self.body_(self.body_arg_, EmulatedBlock{self.block_, self.grid_, t, self.threads_, &self});
    } catch (...) {
      if (!self.thrown_) self.thrown_ = std::current_exception();
      self.fail("thread " + std::to_string(t) + " threw");
    }
    self.finish(t);
  }

  void finish(int t) {
    fibers_[size_t(t)].done = true;
    ++done_;
    for (int b : {0, 1 + t / 32}) {
      Barrier& bar = barriers_[size_t(b)];
      ++bar.left;
      if (!bar.waiting.empty())
        fail("a thread left the kernel while " + std::to_string(bar.waiting.size()) + " wait at " + bar.name);
    }
#ifdef MSMIX_FIBER_ASAN
    __sanitizer_start_switch_fiber(nullptr, scheduler_stack_, scheduler_stack_size_);
#endif
    // returning resumes uc_link: the scheduler
  }

  // The first runnable fiber after `from` (round robin), or -1.
  int next_runnable(int from) const {
    if (!error_.empty()) return -1;
    for (int k = 1; k <= threads_; ++k) {
      const int t = (from + k) % threads_;
      if (!fibers_[size_t(t)].done && !fibers_[size_t(t)].waiting) return t;
    }
    return -1;
  }

  // Saves the current context in `save` and resumes fiber `to` (or the scheduler when to < 0).
  void switch_to(int to, ucontext_t* save, int from = -1) {
    ucontext_t* target = to < 0 ? &scheduler_ : &fibers_[size_t(to)].context;
#ifdef MSMIX_FIBER_ASAN
    void* fake = nullptr;
    if (to < 0)
      __sanitizer_start_switch_fiber(&fake, scheduler_stack_, scheduler_stack_size_);
    else
      __sanitizer_start_switch_fiber(&fake, fibers_[size_t(to)].stack.get(), kStackBytes);
#endif
    current_ = this;
    running_ = to;
    switched_from_ = from;
    swapcontext(save, target);
    running_ = from;  // back on this fiber (or the scheduler)
#ifdef MSMIX_FIBER_ASAN
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);  // the scheduler's stack is learned once, on entry
#endif
  }

  // First code on a new fiber's stack: complete the sanitizer's switch (and learn the scheduler's stack when
  // it is the one that switched here).
  void arrived_on_fiber() {
#ifdef MSMIX_FIBER_ASAN
    const void* bottom = nullptr;
    size_t size = 0;
    __sanitizer_finish_switch_fiber(nullptr, &bottom, &size);
    if (switched_from_ < 0) scheduler_stack_ = bottom, scheduler_stack_size_ = size;
#endif
  }

  std::string stuck_message() const {
    std::string m;
    for (const Barrier& bar : barriers_)
      if (!bar.waiting.empty())
        m += (m.empty() ? "" : ", ") + std::to_string(bar.waiting.size()) + " of " + std::to_string(bar.n) +
             " threads wait at " + bar.name;
    return "no thread can run (threads wait at different barriers): " + m;
  }

  void fail(const std::string& what) {
    if (error_.empty()) error_ = what;
  }

  const int block_, grid_, threads_;
  std::vector<float> shared_;
  std::vector<Fiber> fibers_;
  std::vector<Barrier> barriers_;           // 0: the block's sync; 1 + w: warp w's shuffles
  std::vector<std::vector<double>> slots_;  // per warp: 2 rows of lanes (a float or a double each)
  std::vector<uint64_t> shuffles_ = std::vector<uint64_t>(size_t(threads_), 0);  // per thread, for the slot row
  ucontext_t scheduler_;
  const void* scheduler_stack_ = nullptr;
  size_t scheduler_stack_size_ = 0;
  int running_ = -1, switched_from_ = -1, done_ = 0;
  void (*body_)(void*, const EmulatedBlock&) = nullptr;
  void* body_arg_ = nullptr;
  std::exception_ptr thrown_;
  std::string error_;
};

inline thread_local EmulatedBlockRun* EmulatedBlockRun::current_ = nullptr;

inline void EmulatedBlock::sync() const { run->wait(t, 0); }
inline float EmulatedBlock::shfl_xor(float v, int mask) const { return float(run->shuffle(t, v, mask)); }
inline double EmulatedBlock::shfl_xor(double v, int mask) const { return run->shuffle(t, v, mask); }
inline float EmulatedBlock::shfl(float v, int src_lane) const { return float(run->shuffle(t, v, src_lane, false)); }
inline float* EmulatedBlock::shared() const { return run->shared(); }

// Runs body(block) for every thread of a grid of `blocks` blocks of `threads` threads, the blocks one after
// another. Throws msmix::Error naming the first broken barrier rule.
template <class Body>
void emulate_grid(int blocks, int threads, size_t shared_floats, Body body) {
  for (int b = 0; b < blocks; ++b) EmulatedBlockRun(b, blocks, threads, shared_floats).run(body);
}

}  // namespace msmix::testing
