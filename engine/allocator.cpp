#include "engine/allocator.h"

#include <sys/mman.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "engine/cuda_runtime.h"
#include "engine/env_choice.h"
#include "engine/error.h"

namespace msmix {
namespace {

// Size classes: powers of two up to 1 MiB, then multiples of 1 MiB. Small blocks waste at most 2x,
// large ones at most 1 MiB, and a loop that allocates the same shapes reuses the same blocks.
size_t size_class(size_t bytes) {
  if (bytes <= 64) return 64;
  const size_t mib = size_t(1) << 20;
  if (bytes > mib) return (bytes + mib - 1) / mib * mib;
  size_t c = 64;
  while (c < bytes) c <<= 1;
  return c;
}

bool caching_disabled() {
  static const bool disabled = env_choice("MSMIX_ALLOC", {"caching", "system"}) == 1;
  return disabled;
}

class CachingAllocator {
 public:
  CachingAllocator(void* (*sys_alloc)(size_t), void (*sys_free)(void*)) : sys_alloc_(sys_alloc), sys_free_(sys_free) {}
  // Cached blocks are deliberately not freed at exit: the CUDA context may already be gone.

  void* allocate(size_t bytes) {
    size_t cls = size_class(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    void* ptr = nullptr;
    std::vector<void*>* list = free_list(pool_, cls);
    if ((!caching_disabled() || pool_ != 0) && list && !list->empty()) {  // a pool always reuses its own
      ptr = list->back();
      list->pop_back();
      if (pool_ != 0) return ptr;  // a pool's free block counts as in use already (see deallocate)
    } else {
      ptr = sys_alloc_(cls);
      stats_.system_allocs++;
      stats_.reserved += cls;
    }
    if (pool_ != 0) owner_[ptr] = pool_;
    stats_.in_use += cls;
    if (stats_.in_use > stats_.peak_in_use) stats_.peak_in_use = stats_.in_use;
    return ptr;
  }

  void deallocate(void* ptr, size_t bytes) {
    if (!ptr) return;
    size_t cls = size_class(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    int pool = 0;
    if (auto it = owner_.find(ptr); it != owner_.end()) {
      pool = it->second;
      if (!pools_.count(pool)) {  // released while this block was live: it is the shared cache's now
        owner_.erase(it);
        pool = 0;
      }
    }
    // A block back in a live pool stays in use: its graph writes it at every replay. It leaves in_use when the
    // pool is released.
    if (pool == 0) stats_.in_use -= cls;
    if (caching_disabled() && pool == 0) {
      sys_free_(ptr);
      stats_.reserved -= cls;
    } else {
      pools_[pool][cls].push_back(ptr);
    }
  }

  int new_pool() {
    std::lock_guard<std::mutex> lock(mutex_);
    const int id = next_pool_++;
    pools_[id];
    return id;
  }
  void use_pool(int pool) {
    std::lock_guard<std::mutex> lock(mutex_);
    MSMIX_CHECK(pool == 0 || pools_.count(pool), "allocator: no pool {}", pool);
    pool_ = pool;
  }
  void release_pool(int pool) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (pool == 0 || !pools_.count(pool)) return;
    if (pool_ == pool) pool_ = 0;
    for (auto& [cls, blocks] : pools_[pool]) {
      for (void* p : blocks) {
        owner_.erase(p);
        stats_.in_use -= cls;
        if (caching_disabled()) {
          sys_free_(p);
          stats_.reserved -= cls;
        } else {
          pools_[0][cls].push_back(p);
        }
      }
    }
    pools_.erase(pool);
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }
  void reset_peak() {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.peak_in_use = stats_.in_use;
  }
  void empty_cache() {  // the shared cache only: a pool's blocks belong to its graph
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [cls, blocks] : pools_[0]) {
      for (void* p : blocks) sys_free_(p);
      stats_.reserved -= cls * blocks.size();
      blocks.clear();
    }
  }

 private:
  std::vector<void*>* free_list(int pool, size_t cls) {
    auto p = pools_.find(pool);
    if (p == pools_.end()) return nullptr;
    auto it = p->second.find(cls);
    return it == p->second.end() ? nullptr : &it->second;
  }

  void* (*sys_alloc_)(size_t);
  void (*sys_free_)(void*);
  std::mutex mutex_;
  // Free blocks per pool and size class; pool 0 is the shared cache.
  std::map<int, std::map<size_t, std::vector<void*>>> pools_ = {{0, {}}};
  std::unordered_map<void*, int> owner_;  // blocks a pool allocated (absent: the shared cache's)
  int pool_ = 0, next_pool_ = 1;
  AllocatorStats stats_;
};

// Blocks of 4 MiB and more (a dataset's features, large activations) start on a 2 MiB boundary and ask for
// transparent huge pages: first touching them then takes one page fault per 2 MiB instead of per 4 KiB (loading
// a 1.3 GB feature file took 340k faults, most of its time on a VM). Where THP is off, madvise changes nothing.
void* cpu_sys_alloc(size_t bytes) {
  constexpr size_t kHuge = size_t(2) << 20;
  const bool huge = bytes >= 2 * kHuge;
  // posix_memalign, not aligned_alloc: a size class of 1 MiB steps need not be a multiple of 2 MiB
  void* p = nullptr;
  const int status = posix_memalign(&p, huge ? kHuge : 64, bytes);  // bytes is a size class: a multiple of 64
  MSMIX_CHECK(status == 0 && p, "allocate: out of host memory ({} bytes requested)", bytes);
  if (huge) madvise(p, bytes / kHuge * kHuge, MADV_HUGEPAGE);
  return p;
}
void cpu_sys_free(void* p) { std::free(p); }
void* cuda_sys_alloc(size_t bytes) { return cuda::malloc(bytes); }
void cuda_sys_free(void* p) { cuda::free(p); }

CachingAllocator& allocator_for(Device device) {
  // Leaked on purpose (see above); one allocator serves every GPU index for now.
  static auto* cpu = new CachingAllocator(cpu_sys_alloc, cpu_sys_free);
  static auto* gpu = new CachingAllocator(cuda_sys_alloc, cuda_sys_free);
  return device.is_cuda() ? *gpu : *cpu;
}

}  // namespace

void* allocate(Device device, size_t bytes) { return allocator_for(device).allocate(bytes); }
void deallocate(Device device, void* ptr, size_t bytes) { allocator_for(device).deallocate(ptr, bytes); }
AllocatorStats allocator_stats(Device device) { return allocator_for(device).stats(); }
void allocator_reset_peak(Device device) { allocator_for(device).reset_peak(); }
void allocator_empty_cache(Device device) { allocator_for(device).empty_cache(); }
int allocator_new_pool(Device device) { return allocator_for(device).new_pool(); }
void allocator_use_pool(Device device, int pool) { allocator_for(device).use_pool(pool); }
void allocator_release_pool(Device device, int pool) { allocator_for(device).release_pool(pool); }

}  // namespace msmix
