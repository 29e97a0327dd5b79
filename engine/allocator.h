// Caching allocators, one per device type: freed blocks go back to a free list of their size class
// and are handed out again, so a training loop reaches a steady state with no system allocations.
// MSMIX_ALLOC=system bypasses caching (every block straight from/to the system), which lets
// AddressSanitizer and compute-sanitizer see each use-after-free.
#pragma once
#include <cstddef>

#include "engine/device.h"

namespace msmix {

struct AllocatorStats {
  size_t in_use = 0;         // bytes in live blocks (rounded to their size class)
  size_t reserved = 0;       // in_use + cached free blocks
  size_t peak_in_use = 0;    // high-water mark of in_use since the last reset
  size_t system_allocs = 0;  // calls to the system allocator (malloc / cudaMalloc)
};

void* allocate(Device device, size_t bytes);             // 64-byte aligned, never null
void deallocate(Device device, void* ptr, size_t bytes);  // bytes as passed to allocate
AllocatorStats allocator_stats(Device device);
void allocator_reset_peak(Device device);
void allocator_empty_cache(Device device);  // returns cached free blocks to the system

}  // namespace msmix
