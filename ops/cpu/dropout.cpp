#include "ops/cpu/dropout.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "engine/philox.h"

#if defined(__x86_64__) || defined(__i386__)
// GCC 12 warns (bug 105593) that the header's _mm512_undefined_* values may be used uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#define MSMIX_DROPOUT_X86 1
#endif

namespace msmix::cpu {
namespace {

// What every build needs. One Philox block gives the draws of four consecutive elements: word j of block b
// is element 4b + j of the stream, i.e. philox::uniform(seed, offset, 4b + j). Kernels take ranges [e0, e1)
// of stream elements; in[0] and out[0] are element `first`.
struct Job {
  const float* in;
  float* out;
  int64_t first;
  float scale;
  uint64_t seed, offset;
  uint32_t threshold;  // keep element e when (word >> 8) >= threshold
};

// philox::to_unit(w) >= p  <=>  (w >> 8) * 2^-24 >= p  <=>  (w >> 8) >= ceil(p * 2^24): the product and the
// ceiling are exact, so the integer test keeps the same elements as the float one. 2^24 keeps none.
uint32_t keep_threshold(float p) {
  constexpr double kOne = 16777216.0;
  if (std::isnan(p)) return uint32_t(kOne);  // nothing compares >= NaN
  return uint32_t(std::clamp(std::ceil(double(p) * kOne), 0.0, kOne));
}

inline void apply(const Job& job, int64_t e, uint32_t word) {
  // A product even where dropped, as PyTorch's dropout: a NaN or inf input stays NaN instead of becoming 0.
  job.out[e - job.first] = job.in[e - job.first] * ((word >> 8) >= job.threshold ? job.scale : 0.0f);
}

// One Philox block at a time: the vector builds' rare fallback and the reference they match.
void scalar_range(const Job& job, int64_t e0, int64_t e1) {
  for (int64_t e = e0; e < e1;) {
    const philox::U32x4 w = philox::block(job.seed, job.offset, uint64_t(e / 4));
    for (int k = int(e % 4); k < 4 && e < e1; ++k, ++e) apply(job, e, w.v[k]);
  }
}

// Baseline x86-64: tiles of blocks, first the Philox words of the whole tile (a loop over independent blocks,
// which GCC vectorises with SSE2's pmuludq), then the mask-and-scale pass.
void baseline_range(const Job& job, int64_t e0, int64_t e1) {
  constexpr int64_t kTile = 256;  // blocks per tile: 4 KiB of words, stays in L1
  alignas(64) uint32_t words[4 * kTile];
  for (int64_t b0 = e0 / 4; 4 * b0 < e1; b0 += kTile) {
    const int64_t nb = std::min(kTile, (e1 + 3) / 4 - b0);
#pragma omp simd
    for (int64_t j = 0; j < nb; ++j) {
      const philox::U32x4 w = philox::block(job.seed, job.offset, uint64_t(b0 + j));
      for (int k = 0; k < 4; ++k) words[4 * j + k] = w.v[k];
    }
    const int64_t lo = std::max(e0, 4 * b0), hi = std::min(e1, 4 * (b0 + nb));
    for (int64_t e = lo; e < hi; ++e) apply(job, e, words[e - 4 * b0]);
  }
}

// Philox 4x32-10's constants (engine/philox.h): multipliers and the Weyl increments of the key.
constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u, kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;

// The vector builds run groups of `lanes` consecutive blocks (4 * lanes elements), aligned in the stream:
// group g holds blocks g * lanes + j, lane j. A group whose counters' low words would wrap inside it (once in
// 2^32 / lanes groups) goes to scalar_range, so the lanes share one high word. A group only partly inside
// the range is computed whole and applied through lane masks (short rows of the fused attention start and
// end inside groups).
#ifdef MSMIX_DROPOUT_X86

#define MSMIX_AVX512 __attribute__((target("avx512f")))
#define MSMIX_AVX2 __attribute__((target("avx2")))

// 32x32 -> 64 products of 16 lanes: vpmuludq multiplies the even lanes; the odd ones are shifted down first.
MSMIX_AVX512 inline void mulhilo16(__m512i m, __m512i c, __m512i& hi, __m512i& lo) {
  const __m512i even = _mm512_mul_epu32(m, c), odd = _mm512_mul_epu32(m, _mm512_srli_epi64(c, 32));
  lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
  hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
}

// The 64 words of the 16 blocks from counter ctr (low word without wrap), in element order.
MSMIX_AVX512 inline void philox16(uint64_t ctr, uint64_t seed, __m512i words[4]) {
  const __m512i m0 = _mm512_set1_epi32(int(kM0)), m1 = _mm512_set1_epi32(int(kM1));
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  // Lane j runs block ctr + j: the counter in words 0-1, zeros in words 2-3.
  __m512i c0 = _mm512_add_epi32(_mm512_set1_epi32(int(uint32_t(ctr))), lane);
  __m512i c1 = _mm512_set1_epi32(int(uint32_t(ctr >> 32))), c2 = _mm512_setzero_si512(), c3 = c2;
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int round = 0; round < 10; ++round, k0 += kW0, k1 += kW1) {
    __m512i hi0, lo0, hi1, lo1;
    mulhilo16(m0, c0, hi0, lo0);
    mulhilo16(m1, c2, hi1, lo1);
    // 0x96 is the three-way XOR.
    c0 = _mm512_ternarylogic_epi32(hi1, c1, _mm512_set1_epi32(int(k0)), 0x96);
    c2 = _mm512_ternarylogic_epi32(hi0, c3, _mm512_set1_epi32(int(k1)), 0x96);
    c1 = lo1;
    c3 = lo0;
  }
  // Transpose: c<w> holds word w of blocks 0..15; the output wants each block's words in element order.
  const __m512i t0 = _mm512_unpacklo_epi32(c0, c1), t1 = _mm512_unpackhi_epi32(c0, c1);
  const __m512i t2 = _mm512_unpacklo_epi32(c2, c3), t3 = _mm512_unpackhi_epi32(c2, c3);
  // u<r>'s 128-bit lane L is block 4L + r.
  const __m512i u0 = _mm512_unpacklo_epi64(t0, t2), u1 = _mm512_unpackhi_epi64(t0, t2);
  const __m512i u2 = _mm512_unpacklo_epi64(t1, t3), u3 = _mm512_unpackhi_epi64(t1, t3);
  const __m512i v0 = _mm512_shuffle_i32x4(u0, u1, 0x44), v1 = _mm512_shuffle_i32x4(u2, u3, 0x44);
  const __m512i v2 = _mm512_shuffle_i32x4(u0, u1, 0xEE), v3 = _mm512_shuffle_i32x4(u2, u3, 0xEE);
  words[0] = _mm512_shuffle_i32x4(v0, v1, 0x88), words[1] = _mm512_shuffle_i32x4(v0, v1, 0xDD);
  words[2] = _mm512_shuffle_i32x4(v2, v3, 0x88), words[3] = _mm512_shuffle_i32x4(v2, v3, 0xDD);
}

MSMIX_AVX512 void range_avx512(const Job& job, int64_t e0, int64_t e1) {
  const __m512i threshold = _mm512_set1_epi32(int(job.threshold));
  const __m512 scale = _mm512_set1_ps(job.scale);
  for (int64_t g = e0 / 64; g * 64 < e1; ++g) {
    const int64_t ge = g * 64, lo = std::max(e0, ge), hi = std::min(e1, ge + 64);
    const uint64_t ctr = job.offset + uint64_t(g) * 16;
    if (uint32_t(ctr) > 0xFFFFFFFFu - 15) {
      scalar_range(job, lo, hi);
      continue;
    }
    __m512i words[4];
    philox16(ctr, job.seed, words);
    for (int q = 0; q < 4; ++q) {
      const int64_t e = ge + 16 * q;  // the quarter's first element
      const __mmask16 keep = _mm512_cmpge_epu32_mask(_mm512_srli_epi32(words[q], 8), threshold);
      if (e >= lo && e + 16 <= hi) {
        const __m512 x = _mm512_loadu_ps(job.in + (e - job.first));
        _mm512_storeu_ps(job.out + (e - job.first), _mm512_mul_ps(x, _mm512_maskz_mov_ps(keep, scale)));
      } else if (e < hi && e + 16 > lo) {  // a range end inside the quarter: masked lanes touch no memory
        const int a = int(std::max<int64_t>(lo - e, 0)), b = int(std::min<int64_t>(hi - e, 16));
        const __mmask16 in_range = __mmask16(((1u << b) - 1) & ~((1u << a) - 1));
        const float* src = job.in + (e - job.first);
        const __m512 x = _mm512_maskz_loadu_ps(in_range, src);
        _mm512_mask_storeu_ps(job.out + (e - job.first), in_range, _mm512_mul_ps(x, _mm512_maskz_mov_ps(keep, scale)));
      }
    }
  }
}

MSMIX_AVX2 inline void mulhilo8(__m256i m, __m256i c, __m256i& hi, __m256i& lo) {
  const __m256i even = _mm256_mul_epu32(m, c), odd = _mm256_mul_epu32(m, _mm256_srli_epi64(c, 32));
  lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

MSMIX_AVX2 inline void philox8(uint64_t ctr, uint64_t seed, __m256i words[4]) {
  const __m256i m0 = _mm256_set1_epi32(int(kM0)), m1 = _mm256_set1_epi32(int(kM1));
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256i c0 = _mm256_add_epi32(_mm256_set1_epi32(int(uint32_t(ctr))), lane);
  __m256i c1 = _mm256_set1_epi32(int(uint32_t(ctr >> 32))), c2 = _mm256_setzero_si256(), c3 = c2;
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int round = 0; round < 10; ++round, k0 += kW0, k1 += kW1) {
    __m256i hi0, lo0, hi1, lo1;
    mulhilo8(m0, c0, hi0, lo0);
    mulhilo8(m1, c2, hi1, lo1);
    c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32(int(k0)));
    c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32(int(k1)));
    c1 = lo1;
    c3 = lo0;
  }
  const __m256i t0 = _mm256_unpacklo_epi32(c0, c1), t1 = _mm256_unpackhi_epi32(c0, c1);
  const __m256i t2 = _mm256_unpacklo_epi32(c2, c3), t3 = _mm256_unpackhi_epi32(c2, c3);
  // u<r>'s 128-bit lane L is block 4L + r.
  const __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
  const __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
  words[0] = _mm256_permute2x128_si256(u0, u1, 0x20), words[1] = _mm256_permute2x128_si256(u2, u3, 0x20);
  words[2] = _mm256_permute2x128_si256(u0, u1, 0x31), words[3] = _mm256_permute2x128_si256(u2, u3, 0x31);
}

MSMIX_AVX2 void range_avx2(const Job& job, int64_t e0, int64_t e1) {
  const __m256i threshold = _mm256_set1_epi32(int(job.threshold));
  const __m256 scale = _mm256_set1_ps(job.scale);
  for (int64_t g = e0 / 32; g * 32 < e1; ++g) {
    const int64_t ge = g * 32, lo = std::max(e0, ge), hi = std::min(e1, ge + 32);
    const uint64_t ctr = job.offset + uint64_t(g) * 8;
    if (uint32_t(ctr) > 0xFFFFFFFFu - 7) {
      scalar_range(job, lo, hi);
      continue;
    }
    __m256i words[4];
    philox8(ctr, job.seed, words);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int q = 0; q < 4; ++q) {
      const int64_t e = ge + 8 * q;  // the quarter's first element
      // (word >> 8) < 2^24 and threshold <= 2^24: the signed compare is exact.
      const __m256 drop = _mm256_castsi256_ps(_mm256_cmpgt_epi32(threshold, _mm256_srli_epi32(words[q], 8)));
      if (e >= lo && e + 8 <= hi) {
        const __m256 x = _mm256_loadu_ps(job.in + (e - job.first));
        _mm256_storeu_ps(job.out + (e - job.first), _mm256_mul_ps(x, _mm256_andnot_ps(drop, scale)));
      } else if (e < hi && e + 8 > lo) {  // a range end inside the quarter: masked lanes touch no memory
        const __m256i a = _mm256_set1_epi32(int(std::max<int64_t>(lo - e, 0)));
        const __m256i b = _mm256_set1_epi32(int(std::min<int64_t>(hi - e, 8)));
        const __m256i in_range =
            _mm256_andnot_si256(_mm256_cmpgt_epi32(a, lane), _mm256_cmpgt_epi32(b, lane));  // a <= lane < b
        const __m256 x = _mm256_maskload_ps(job.in + (e - job.first), in_range);
        _mm256_maskstore_ps(job.out + (e - job.first), in_range, _mm256_mul_ps(x, _mm256_andnot_ps(drop, scale)));
      }
    }
  }
}

#endif  // MSMIX_DROPOUT_X86

using RangeKernel = void (*)(const Job&, int64_t, int64_t);

RangeKernel kernel_for(DropoutIsa isa) {
  MSMIX_CHECK(dropout_isa_supported(isa), "dropout: this CPU has no {}", isa_name(isa));
#ifdef MSMIX_DROPOUT_X86
  if (isa == DropoutIsa::avx512) return range_avx512;
  if (isa == DropoutIsa::avx2) return range_avx2;
#endif
  return baseline_range;
}

// Elements [first, first + n) in work items of kChunk stream elements (aligned in the stream, so every
// item but the ends starts on a group), in parallel when long.
void run(RangeKernel kernel, const Job& job, int64_t n, bool parallel) {
  constexpr int64_t kChunk = 1 << 12;
  const int64_t e0 = job.first, e1 = e0 + n;
  if (!parallel || n <= kChunk) return kernel(job, e0, e1);
  const int64_t c0 = e0 / kChunk, c1 = (e1 + kChunk - 1) / kChunk;
#pragma omp parallel for if (n > (1 << 14))
  for (int64_t c = c0; c < c1; ++c) kernel(job, std::max(e0, c * kChunk), std::min(e1, (c + 1) * kChunk));
}

}  // namespace

const char* isa_name(DropoutIsa isa) {
  switch (isa) {
    case DropoutIsa::avx512: return "avx512f";
    case DropoutIsa::avx2: return "avx2";
    default: return "baseline";
  }
}

bool dropout_isa_supported(DropoutIsa isa) {
#ifdef MSMIX_DROPOUT_X86
  // GCC's CPU test also checks that the OS saves the vector registers (XCR0). (__builtin_cpu_init: in case
  // this first runs from another file's static initialiser.)
  static const bool init = (__builtin_cpu_init(), true);
  static const bool avx512 = init && __builtin_cpu_supports("avx512f"), avx2 = init && __builtin_cpu_supports("avx2");
  if (isa == DropoutIsa::avx512) return avx512;
  if (isa == DropoutIsa::avx2) return avx2;
#endif
  return isa == DropoutIsa::baseline;
}

DropoutIsa dropout_best_isa() {
  static const DropoutIsa best = dropout_isa_supported(DropoutIsa::avx512) ? DropoutIsa::avx512
                                 : dropout_isa_supported(DropoutIsa::avx2) ? DropoutIsa::avx2
                                                                           : DropoutIsa::baseline;
  return best;
}

void dropout_apply_isa(DropoutIsa isa, const float* in, float* out, int64_t first, int64_t n, float p, float scale,
                       uint64_t seed, uint64_t offset) {
  MSMIX_CHECK(first >= 0 && n >= 0, "dropout: bad element range [{}, {} + {})", first, first, n);
  run(kernel_for(isa), Job{in, out, first, scale, seed, offset, keep_threshold(p)}, n, true);
}

void dropout_apply(const float* in, float* out, int64_t n, float p, float scale, uint64_t seed, uint64_t offset) {
  static const RangeKernel kernel = kernel_for(dropout_best_isa());
  run(kernel, Job{in, out, 0, scale, seed, offset, keep_threshold(p)}, n, true);
}

void dropout_apply_range(const float* in, float* out, int64_t first, int64_t n, float p, float scale, uint64_t seed,
                         uint64_t offset) {
  static const RangeKernel kernel = kernel_for(dropout_best_isa());
  run(kernel, Job{in, out, first, scale, seed, offset, keep_threshold(p)}, n, false);
}

}  // namespace msmix::cpu
