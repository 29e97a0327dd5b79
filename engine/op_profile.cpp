#include "engine/op_profile.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "engine/cuda_runtime.h"
#include "engine/error.h"

namespace msmix {

namespace {

thread_local OpProfile* t_active = nullptr;

double steady_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

OpProfile::OpProfile(std::function<double()> now_ms) : now_ms_(now_ms ? std::move(now_ms) : steady_ms) {}

OpProfile::~OpProfile() {
  if (t_active == this) t_active = nullptr;
}

OpProfile* OpProfile::active() { return t_active; }

void OpProfile::start(bool synchronize_cuda, int64_t trace_outermost) {
  MSMIX_CHECK(t_active == nullptr || t_active == this,
              "OpProfile::start: another profile is already recording on this thread");
  sync_ = synchronize_cuda;
  trace_left_ = trace_outermost;
  open_.clear();
  t_active = this;
}

void OpProfile::stop() {
  if (t_active == this) t_active = nullptr;
  open_.clear();
}

void OpProfile::enter(const char* name) {
  if (sync_ && !cuda::capturing()) cuda::synchronize();  // what was queued before belongs to the enclosing range
  int64_t event = -1;
  if (trace_left_ > 0) {
    event = int64_t(trace_.size());
    trace_.push_back({int(open_.size()), name, NAN});  // its time when it closes
  }
  open_.push_back({name, now_ms_(), 0.0, event});
}

void OpProfile::leave() {
  if (open_.empty()) return;  // a range opened before start()
  if (sync_ && !cuda::capturing()) cuda::synchronize();
  const Open o = open_.back();
  open_.pop_back();
  const double ms = now_ms_() - o.start_ms;
  if (o.event >= 0) trace_[size_t(o.event)].ms = ms;
  if (open_.empty() && trace_left_ > 0) --trace_left_;
  // The phase: the range one level below the outermost (open_[1] while this one is deeper), else its own name.
  const char* phase = open_.size() >= 2 ? open_[1].name : o.name;
  Entry& e = entries_[{phase, o.name}];
  if (e.calls == 0) e.phase = phase, e.name = o.name;
  ++e.calls;
  e.self_ms += ms - o.nested_ms;
  if (open_.empty())
    total_ms_ += ms;
  else
    open_.back().nested_ms += ms;
}

std::vector<OpProfile::Entry> OpProfile::entries() const {
  std::vector<Entry> out;
  for (const auto& [key, e] : entries_) out.push_back(e);
  std::stable_sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.self_ms > b.self_ms; });
  return out;
}

double OpProfile::total_ms() const { return total_ms_; }

void op_profile_enter(const char* name) {
  if (t_active) t_active->enter(name);
}

void op_profile_leave() {
  if (t_active) t_active->leave();
}

}  // namespace msmix
