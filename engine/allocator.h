// Caching allocators, one per device type: freed blocks go back to a free list of their size class
// and are handed out again, so a training loop reaches a steady state with no system allocations.
// MSMIX_ALLOC=system bypasses caching (every block straight from/to the system), which lets
// AddressSanitizer and compute-sanitizer see each use-after-free.
#pragma once
#include <cstddef>

#include "engine/device.h"

namespace msmix {

struct AllocatorStats {
  size_t in_use = 0;         // bytes in live blocks (rounded to their size class) and in a live pool's free ones
  size_t reserved = 0;       // in_use + cached free blocks
  size_t peak_in_use = 0;    // high-water mark of in_use since the last reset
  size_t system_allocs = 0;  // calls to the system allocator (malloc / cudaMalloc)
};

void* allocate(Device device, size_t bytes);             // 64-byte aligned, never null
void deallocate(Device device, void* ptr, size_t bytes);  // bytes as passed to allocate
AllocatorStats allocator_stats(Device device);
void allocator_reset_peak(Device device);
void allocator_empty_cache(Device device);  // returns cached free blocks to the system

// Private pools, for CUDA graphs: a captured graph keeps using the addresses its capture allocated, so those
// blocks must never go to anyone else while it lives. While a pool is in use (allocator_use_pool), every
// block allocated is the pool's, and a pool's block, when freed, goes back to the pool's own free list, which
// only allocations made while that pool is in use draw from. Releasing the pool hands its free blocks (and,
// as they are freed, its live ones) back to the shared cache. Pool 0 is the shared cache itself.
int allocator_new_pool(Device device);
void allocator_use_pool(Device device, int pool);  // 0: back to the shared cache
void allocator_release_pool(Device device, int pool);

}  // namespace msmix
