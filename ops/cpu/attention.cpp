#include "ops/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "engine/error.h"
#include "ops/cpu/dropout.h"
#include "ops/cpu/vec_kernels.h"

namespace msmix::cpu {
namespace {

// Rows of the probability block per pass: 8192 floats (32 KiB) per buffer whatever S, so the k and v grads
// are folded in once per block and the buffers stay in L2.
int64_t rows_per_block(const AttentionDims& d) {
  return std::max<int64_t>(1, std::min(d.L, 8192 / std::max<int64_t>(d.S, 1)));
}

// Internal rows (keys) are padded to a multiple of 16 floats: every build's loops run whole vectors, no
// scalar tails. Padded keys have zero k and v and probability 0.
int64_t padded_keys(const AttentionDims& d) { return (d.S + 15) / 16 * 16; }

// Per-thread scratch, rows of padded_keys: head h of k and v transposed to [D, S] (so loops over keys are
// contiguous), the probability block (and dropped copy, and grad), this block's scaled q and dO rows, the
// grads of k and v in the transposed layout, and the rows' extents. One per thread, kept between calls and
// grown when needed: small attentions (MulT on utterance-level data has L = S = 1) run thousands of calls.
struct Scratch {
  std::vector<float> kT, vT, p, pd, dp, qs, gs, dkT, dvT;
  std::vector<int64_t> extent;  // per row of the block: keys past it are all masked
  static Scratch& for_thread(const AttentionDims& d, bool backward) {
    thread_local Scratch w;
    const size_t keys = size_t(d.D * padded_keys(d)), block = size_t(rows_per_block(d) * padded_keys(d));
    const size_t rows = size_t(rows_per_block(d)) * size_t(d.D);
    grow(w.kT, keys), grow(w.vT, keys), grow(w.p, block), grow(w.qs, rows), grow(w.extent, size_t(rows_per_block(d)));
    if (backward) grow(w.dkT, keys), grow(w.dvT, keys), grow(w.pd, block), grow(w.dp, block), grow(w.gs, rows);
    return w;
  }
  template <class T>
  static void grow(std::vector<T>& v, size_t n) {
    if (v.size() < n) v.resize(n);
  }
};

// One (batch, head): row l's inputs.
struct Head {
  const AttentionArgs& a;
  const AttentionDims& d;
  int64_t b, h, bh;
  const int64_t* extents;  // [B H, L] (see row_extents) or null when nothing is masked
  int64_t extent(int64_t l) const { return extents ? extents[bh * d.L + l] : d.S; }
  const float* q_row(int64_t l) const { return a.q + (b * d.L + l) * d.H * d.D + h * d.D; }
  const float* mask_row(int64_t l) const {
    if (!a.attn_mask) return nullptr;
    return a.attn_mask + ((a.mask_per_head ? bh * d.L : 0) + l) * d.S;
  }
  const float* padding() const { return a.key_padding ? a.key_padding + b * d.S : nullptr; }
  int64_t stream_index(int64_t l) const { return (bh * d.L + l) * d.S; }  // dropout element (b, h, l, 0)
};

// 1 + the last key s < S that neither the mask row (-inf) nor the padding row (nonzero) masks; 0 if none.
int64_t last_open(const float* mask, const float* pad, int64_t S) {
  int64_t e = S;
  while (e > 0 && ((mask && mask[e - 1] == -std::numeric_limits<float>::infinity()) || (pad && pad[e - 1] != 0))) --e;
  return e;
}

// Per (batch, head, query row): a bound past which every key is masked (MMSA's MulT masks a suffix of the keys
// of each row; padding masks a suffix per batch). The kernels stop each row's loops there and zero its tail:
// those probabilities are exactly 0. A [L, S] mask and the padding are scanned once per call (the bound is the
// smaller of theirs: past it one of them masks every key); a per-head mask row by row. A row with no open key
// gets S, so it comes out NaN as the composite's. Empty when no mask is given.
std::vector<int64_t> row_extents(const AttentionArgs& a, const AttentionDims& d) {
  if (!a.attn_mask && !a.key_padding) return {};
  std::vector<int64_t> out(d.B * d.H * d.L), mask_open(d.L, d.S), pad_open(d.B, d.S);
  if (a.attn_mask && !a.mask_per_head)
    for (int64_t l = 0; l < d.L; ++l) mask_open[l] = last_open(a.attn_mask + l * d.S, nullptr, d.S);
  if (a.key_padding)
    for (int64_t b = 0; b < d.B; ++b) pad_open[b] = last_open(nullptr, a.key_padding + b * d.S, d.S);
  for (int64_t bh = 0; bh < d.B * d.H; ++bh)
    for (int64_t l = 0; l < d.L; ++l) {
      const int64_t b = bh / d.H;
      const float* pad = a.key_padding ? a.key_padding + b * d.S : nullptr;
      const int64_t e = a.attn_mask && a.mask_per_head ? last_open(a.attn_mask + (bh * d.L + l) * d.S, pad, d.S)
                                                       : std::min(mask_open[l], pad_open[b]);
      out[bh * d.L + l] = e > 0 ? e : d.S;
    }
  return out;
}

// x [B, S, H D] -> head h of batch b, transposed: xT [D, ld], zero past S.
void pack_transposed(const float* x, const AttentionDims& d, int64_t b, int64_t h, float* xT) {
  const int64_t E = d.H * d.D, ld = padded_keys(d);
  for (int64_t s = 0; s < d.S; ++s)
    for (int64_t j = 0; j < d.D; ++j) xT[j * ld + s] = x[(b * d.S + s) * E + h * d.D + j];
  for (int64_t j = 0; j < d.D; ++j) std::fill(xT + j * ld + d.S, xT + (j + 1) * ld, 0.0f);
}

// ---- the kernels, once per instruction set (see attention_impl.h)
namespace base {
typedef float V __attribute__((vector_size(16)));
constexpr int64_t W = 4;
#include "ops/cpu/attention_impl.h"
}  // namespace base

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MSMIX_ATTENTION_X86 1
// The default build flags stay baseline x86-64: these regions compile their copy of the kernels for AVX-512F
// and for AVX2 + FMA, and the kernels call one only when the CPU has it (selected() below).
#pragma GCC push_options
#pragma GCC target("avx512f")
namespace avx512 {
typedef float V __attribute__((vector_size(64)));
constexpr int64_t W = 16;
#include "ops/cpu/attention_impl.h"
}  // namespace avx512
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
typedef float V __attribute__((vector_size(32)));
constexpr int64_t W = 8;
#include "ops/cpu/attention_impl.h"
}  // namespace avx2
#pragma GCC pop_options
#endif

using ForwardHead = void (*)(const Head&, float*, float*, Scratch&);
using BackwardHead = void (*)(const Head&, const float*, const float*, float*, float*, float*, Scratch&);

struct Build {
  ForwardHead forward;
  BackwardHead backward;
};

Build build_of(AttentionBuild b) {
#ifdef MSMIX_ATTENTION_X86
  if (b == AttentionBuild::avx512) return {avx512::forward_head, avx512::backward_head};
  if (b == AttentionBuild::avx2) return {avx2::forward_head, avx2::backward_head};
#endif
  (void)b;
  return {base::forward_head, base::backward_head};
}

AttentionBuild& selected() {
  static AttentionBuild b = attention_build_supported(AttentionBuild::avx512) ? AttentionBuild::avx512
                            : attention_build_supported(AttentionBuild::avx2) ? AttentionBuild::avx2
                                                                              : AttentionBuild::baseline;
  return b;
}

}  // namespace

bool attention_build_supported(AttentionBuild b) {
#ifdef MSMIX_ATTENTION_X86
  // GCC's CPU test also checks that the OS saves the vector registers (XCR0). (__builtin_cpu_init: in case
  // this first runs from another file's static initialiser.)
  static const bool init = (__builtin_cpu_init(), true);
  static const bool avx512 = init && __builtin_cpu_supports("avx512f");
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (b == AttentionBuild::avx512) return avx512;
  if (b == AttentionBuild::avx2) return avx2;
#endif
  return b == AttentionBuild::baseline;
}

const char* attention_build_name(AttentionBuild b) {
  return b == AttentionBuild::avx512 ? "avx512f" : b == AttentionBuild::avx2 ? "avx2+fma" : "baseline";
}

AttentionBuild attention_build() { return selected(); }

void set_attention_build(AttentionBuild b) {
  MSMIX_CHECK(attention_build_supported(b), "fused_attention: this CPU has no {}", attention_build_name(b));
  selected() = b;
}

void attention_forward(const AttentionArgs& a, const AttentionDims& d, float* out, float* stats) {
  const int64_t heads = d.B * d.H;
  const std::vector<int64_t> extents = row_extents(a, d);
  const int64_t* ext = extents.empty() ? nullptr : extents.data();
#pragma omp parallel if (heads > 1 && d.L * d.S * d.D > (1 << 12))
  {
    Scratch& w = Scratch::for_thread(d, false);
#pragma omp for schedule(dynamic)
    for (int64_t bh = 0; bh < heads; ++bh)
      build_of(selected()).forward(Head{a, d, bh / d.H, bh % d.H, bh, ext}, out, stats, w);
  }
}

void attention_backward(const AttentionArgs& a, const AttentionDims& d, const float* stats, const float* gout,
                        float* gq, float* gk, float* gv) {
  const int64_t heads = d.B * d.H;
  const std::vector<int64_t> extents = row_extents(a, d);
  const int64_t* ext = extents.empty() ? nullptr : extents.data();
#pragma omp parallel if (heads > 1 && d.L * d.S * d.D > (1 << 12))
  {
    Scratch& w = Scratch::for_thread(d, true);
#pragma omp for schedule(dynamic)
    for (int64_t bh = 0; bh < heads; ++bh)
      build_of(selected()).backward(Head{a, d, bh / d.H, bh % d.H, bh, ext}, stats, gout, gq, gk, gv, w);
  }
}

}  // namespace msmix::cpu
