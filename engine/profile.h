// Named ranges on Nsight Systems' timeline (NVTX): every op's forward (MSMIX_OP_RANGE at the top of each op
// in ops/), every node's backward (engine/autograd.cpp), and the trainer's phases (step, forward, backward,
// clip, optimizer, evaluate). Ranges nest. Without a profiler attached a range costs a few nanoseconds. See the
// README's profiling section for the nsys command. The same ranges feed msmix's own recorder (engine/op_profile.h,
// `msmix bench --ops`) while one is started on the thread.
#pragma once
#include "engine/cuda_runtime.h"

namespace msmix {

// engine/op_profile.cpp: record a range in the OpProfile started on this thread, if any.
void op_profile_enter(const char* name);
void op_profile_leave();

class ProfileRange {
 public:
  explicit ProfileRange(const char* name) {
    cuda::range_push(name);
    op_profile_enter(name);
  }
  ~ProfileRange() {
    op_profile_leave();
    cuda::range_pop();
  }
  ProfileRange(const ProfileRange&) = delete;
  ProfileRange& operator=(const ProfileRange&) = delete;
};

}  // namespace msmix

// One range over the rest of the enclosing scope (an op's body).
#define MSMIX_OP_RANGE(name) ::msmix::ProfileRange msmix_op_range_(name)
