// Generator: a Philox key (seed) and a position (offset, in 128-bit blocks) in its stream.
// Each draw takes the current offset and advances it, so a sequence of draws is reproducible
// from the seed alone, on any device.
#pragma once
#include <cstdint>

namespace msmix {

struct Generator {
  uint64_t seed = 0;
  uint64_t offset = 0;

  explicit Generator(uint64_t seed_ = 0) : seed(seed_) {}
  // Reserves `blocks` blocks of the stream and returns where they start.
  uint64_t take(uint64_t blocks) {
    uint64_t start = offset;
    offset += blocks;
    return start;
  }
  // Blocks needed for n uniform / n normal elements.
  static uint64_t uniform_blocks(uint64_t n) { return (n + 3) / 4; }
  static uint64_t normal_blocks(uint64_t n) { return (n + 1) / 2; }

  float uniform();                      // one host-side draw in [0, 1)
  float normal();                       // one host-side standard normal
  uint64_t next_u64();                  // 64 random bits: one block of the stream
  uint64_t randint(uint64_t n);         // next_u64() % n: uniform in [0, n) (bias below 2^-32 for the n we use)
  float beta(float alpha, float beta);  // Beta(alpha, beta) via two Gamma draws (Marsaglia-Tsang)
  float gamma(float shape);             // Gamma(shape, 1)
};

// The process-wide generator used by parameter init, dropout and Tensor::rand/randn without a generator.
Generator& default_generator();

// While a CUDA graph step is captured (msmix/graph_step.h), dropout on the GPU reads the default generator's
// offset from device memory instead of baking it into the kernel: `device_offset` holds the offset at the
// start of the step, rewritten before each replay, and a kernel draws at *device_offset + (its offset at
// capture - capture_start). So every replay draws the masks an uncaptured step would.
struct GraphPhilox {
  const uint64_t* device_offset = nullptr;  // null: no graph step is being captured
  uint64_t capture_start = 0;
};
GraphPhilox& graph_philox();

// The Philox offset a GPU kernel gets for `offset`, just taken from `gen` by `op`: outside a capture, offset
// itself and no base; inside a captured graph step, offset relative to the capture's start and the device word
// the kernel adds to it (an error for any generator but the default one, whose draws a replay cannot redo).
struct KernelOffset {
  uint64_t offset = 0;
  const uint64_t* base = nullptr;  // non-null: the kernel draws at *base + offset
};
KernelOffset kernel_offset(const Generator& gen, uint64_t offset, bool on_gpu, const char* op);

void manual_seed(uint64_t seed);  // resets the default generator to (seed, 0)

}  // namespace msmix
