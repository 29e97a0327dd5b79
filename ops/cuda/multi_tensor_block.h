// The multi-tensor kernels' bodies (Adam over many tensors, clip_grad_norm's three passes; twins:
// ops/cpu/optimizer.h and msmix/grad_clip.cpp), written once for two compilers (ops/cuda/block_code.h): nvcc
// builds them into ops/cuda/optimizer.cu's kernels, and tests/ops/test_multi_tensor_block.cpp runs the same code
// on the CPU against the CPU twins.
//
// The tensors are cut into chunks of kChunk elements, numbered across the list (an entry's first_chunk: the
// number of its first chunk). Block x takes chunks x, x + grid, ..., finds each one's entry by binary search
// over first_chunk, and its threads stride over the chunk's elements. Every sum has a fixed order: the same
// value on every run.
#pragma once
#include <cstdint>
#include <vector>

#include "ops/cpu/optimizer.h"
#include "ops/cuda/block_code.h"

namespace msmix::multi_tensor_block {

constexpr int64_t kChunk = 8192;

// Numbers the chunks of `entries` (dropping empty ones; Entry has size() and first_chunk); returns how many
// there are. Host code.
template <class Entry>
int64_t number_chunks(std::vector<Entry>& entries) {
  std::vector<Entry> kept;
  int64_t chunks = 0;
  for (Entry e : entries) {
    if (e.size() == 0) continue;
    e.first_chunk = chunks;
    chunks += (e.size() + kChunk - 1) / kChunk;
    kept.push_back(e);
  }
  entries.swap(kept);
  return chunks;
}

// The entry holding chunk c (the last with first_chunk <= c) and the chunk's elements [begin, end) in it.
template <class Entry>
MSMIX_BLOCK_FN const Entry& chunk_entry(const Entry* e, int count, int64_t c, int64_t& begin, int64_t& end) {
  int lo = 0, hi = count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (e[mid].first_chunk <= c)
      lo = mid;
    else
      hi = mid - 1;
  }
  begin = (c - e[lo].first_chunk) * kChunk;
  end = begin + kChunk < e[lo].size() ? begin + kChunk : e[lo].size();
  return e[lo];
}

// Sum of one double per thread over the block (threads() a multiple of 32); every thread gets it, in the same
// order. scratch: one double per warp, in shared memory. All threads of the block call it.
template <class Block>
MSMIX_BLOCK_FN double block_sum(const Block& blk, double v, double* scratch) {
  for (int o = 16; o > 0; o >>= 1) v += blk.shfl_xor(v, o);
  const int warp = blk.thread() / 32, lane = blk.thread() % 32, warps = blk.threads() / 32;
  blk.sync();  // the previous call's readers are done with scratch
  if (lane == 0) scratch[warp] = v;
  blk.sync();
  double r = scratch[0];
  for (int w = 1; w < warps; ++w) r += scratch[w];
  return r;
}

// ---- Adam: element i of one tensor's update, each operation rounded as the CPU's.
MSMIX_BLOCK_FN void adam_element(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                                 const cpu::AdamScalars& s, int64_t i) {
  const float p = rn::mul(param[i], s.param_scale);
  float g = grad[i];
  if (s.l2_weight_decay != 0) g = rn::add(g, rn::mul(s.l2_weight_decay, p));
  const float m = rn::add(rn::mul(exp_avg[i], s.beta1), rn::mul(s.one_minus_beta1, g));
  const float v = rn::add(rn::mul(exp_avg_sq[i], s.beta2), rn::mul(rn::mul(s.one_minus_beta2, g), g));
  exp_avg[i] = m;
  exp_avg_sq[i] = v;
  const float denom = rn::add(rn::div(rn::sqrt(v), s.bias_correction2_sqrt), s.eps);
  param[i] = rn::sub(p, rn::div(rn::mul(s.step_size, m), denom));
}

struct AdamEntry {
  cpu::AdamTensor t;
  int64_t first_chunk;
  MSMIX_HOST_DEVICE int64_t size() const { return t.n; }
};

template <class Block>
MSMIX_BLOCK_FN void adam_many(const Block& blk, const AdamEntry* entries, int count, int64_t chunks) {
  for (int64_t c = blk.block(); c < chunks; c += blk.blocks()) {
    int64_t begin, end;
    const cpu::AdamTensor& t = chunk_entry(entries, count, c, begin, end).t;
    for (int64_t i = begin + blk.thread(); i < end; i += blk.threads())
      adam_element(t.param, t.grad, t.exp_avg, t.exp_avg_sq, t.s, i);
  }
}

// ---- clip_grad_norm over many tensors, three launches and no read back: pass 1 writes each chunk's sum of
// squares in double to partial[c], pass 2 sums the partials in one block and decides norm and coefficient on
// the device, pass 3 scales.
struct GradEntry {
  float* g;
  int64_t n, first_chunk;
  MSMIX_HOST_DEVICE int64_t size() const { return n; }
};

// Shared memory (floats) of the passes that sum over the block: one double per warp.
constexpr int clip_shared_floats(int threads) { return 2 * (threads / 32); }

template <class Block>
MSMIX_BLOCK_FN void chunk_squares(const Block& blk, const GradEntry* e, int count, int64_t chunks, double* partial) {
  double* scratch = reinterpret_cast<double*>(blk.shared());
  for (int64_t c = blk.block(); c < chunks; c += blk.blocks()) {
    int64_t begin, end;
    const float* g = chunk_entry(e, count, c, begin, end).g;
    double s = 0;
    for (int64_t i = begin + blk.thread(); i < end; i += blk.threads()) s += double(g[i]) * double(g[i]);
    s = block_sum(blk, s, scratch);  // its leading barrier protects scratch across chunks
    if (blk.thread() == 0) partial[c] = s;
  }
}

// One block. decision[0] = norm, decision[1] = the coefficient, or 1 when nothing is to be scaled (norm within
// max_norm, or not finite: reported, not applied, as the CPU path).
template <class Block>
MSMIX_BLOCK_FN void clip_decide(const Block& blk, const double* partial, int64_t chunks, float max_norm,
                                float* decision) {
  double s = 0;
  for (int64_t i = blk.thread(); i < chunks; i += blk.threads()) s += partial[i];
  s = block_sum(blk, s, reinterpret_cast<double*>(blk.shared()));
  if (blk.thread() == 0) {
    const float norm = float(::sqrt(s));
    const float coef = rn::div(max_norm, rn::add(norm, 1e-6f));  // float, as the CPU
    decision[0] = norm;
    decision[1] = isfinite(norm) && coef < 1.0f ? coef : 1.0f;
  }
}

template <class Block>
MSMIX_BLOCK_FN void clip_scale(const Block& blk, const GradEntry* e, int count, int64_t chunks, const float* decision) {
  const float coef = decision[1];
  if (coef == 1.0f) return;
  for (int64_t c = blk.block(); c < chunks; c += blk.blocks()) {
    int64_t begin, end;
    float* g = chunk_entry(e, count, c, begin, end).g;
    for (int64_t i = begin + blk.thread(); i < end; i += blk.threads()) g[i] = rn::mul(g[i], coef);
  }
}

}  // namespace msmix::multi_tensor_block
