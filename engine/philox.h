// Philox 4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a counter-based
// generator. Element i of a draw keyed by (seed, offset) depends only on (seed, offset, i), so a CPU loop
// and a CUDA kernel produce the same numbers in any order and any thread layout.
// Header-only and usable from device code (MSMIX_HD expands to __host__ __device__ under nvcc).
#pragma once
#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define MSMIX_HD __host__ __device__ inline
#else
#define MSMIX_HD inline
#endif

namespace msmix::philox {

struct U32x4 {
  uint32_t v[4];
};

MSMIX_HD void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = uint64_t(a) * uint64_t(b);
  hi = uint32_t(p >> 32);
  lo = uint32_t(p);
}

// Ten rounds of Philox4x32 on counter `c` with key `k`.
MSMIX_HD U32x4 philox4x32_10(U32x4 c, uint32_t k0, uint32_t k1) {
  const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(M0, c.v[0], hi0, lo0);
    mulhilo(M1, c.v[2], hi1, lo1);
    U32x4 n = {{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
    c = n;
    k0 += W0;
    k1 += W1;
  }
  return c;
}

// Four 32-bit words for block `block` of the stream (seed, offset). Blocks are 128 bits.
MSMIX_HD U32x4 block(uint64_t seed, uint64_t offset, uint64_t block_index) {
  uint64_t ctr = offset + block_index;
  U32x4 c = {{uint32_t(ctr), uint32_t(ctr >> 32), 0u, 0u}};
  return philox4x32_10(c, uint32_t(seed), uint32_t(seed >> 32));
}

// 24 random bits -> float in [0, 1).
MSMIX_HD float to_unit(uint32_t x) { return float(x >> 8) * (1.0f / 16777216.0f); }

// Element i of a uniform [0, 1) draw: word i % 4 of block i / 4. A draw of n elements uses
// ceil(n / 4) blocks of the stream; the caller advances the offset by that much.
MSMIX_HD float uniform(uint64_t seed, uint64_t offset, uint64_t i) {
  U32x4 b = block(seed, offset, i / 4);
  return to_unit(b.v[i % 4]);
}

// Element i of a standard normal draw (Box-Muller on words 2(i%2), 2(i%2)+1 of block i / 2).
// Uses ceil(n / 2) blocks.
MSMIX_HD float normal(uint64_t seed, uint64_t offset, uint64_t i) {
  U32x4 b = block(seed, offset, i / 2);
  int lane = int(i % 2) * 2;
  float u1 = 1.0f - to_unit(b.v[lane]);  // (0, 1]: log is finite
  float u2 = to_unit(b.v[lane + 1]);
  return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
}

}  // namespace msmix::philox
