// The fused attention's CUDA kernels (twin: ops/cpu/attention.h). Their bodies, and the design, are in
// ops/cuda/attention_block.h, which a CPU test also runs; this file launches them.
// Bound: the per-pair arithmetic (2 D multiply-adds, an exp; with dropout a quarter of a Philox block in the
// forward and a bit read in the backward); K, V and q, dO are read once per block of kWarps rows (or keys) from L2.
// Head widths 5 or 10 exactly for MulT, else 8, 16, 32, 64 (at 64 the backward kernels spill some registers to local
// memory).
#include "engine/error.h"
#include "ops/cuda/attention_block.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/device_block.cuh"
#include "ops/cuda/kernels.h"

namespace msmix::cuda {
namespace {

using namespace attention_block;

// The args with a captured graph step's dropout offset resolved (engine/random.h: the step's start, read from
// the device at each replay, plus the offset at capture); once per thread, before any Philox draw.
__device__ AttentionArgs with_graph_offset(AttentionArgs a) {
  if (a.offset_base) a.offset += *a.offset_base;
  return a;
}

template <int DM>
__global__ void __launch_bounds__(kBlockThreads)
    attention_forward_kernel(const AttentionArgs a, const AttentionDims d, float* out, float* stats) {
  forward<DM>(DeviceBlock{}, with_graph_offset(a), d, out, stats);
}

template <int DM>
__global__ void __launch_bounds__(kBlockThreads)
    attention_backward_rows_kernel(const AttentionArgs a, const AttentionDims d, const float* stats, const float* gout,
                                   float* t_rows, float* gq) {
  backward_rows<DM>(DeviceBlock{}, with_graph_offset(a), d, stats, gout, t_rows, gq);
}

template <int DM>
__global__ void __launch_bounds__(kBlockThreads)
    attention_backward_keys_kernel(const AttentionArgs a, const AttentionDims d, const float* stats, const float* gout,
                                   const float* t_rows, float* gk, float* gv) {
  backward_keys<DM>(DeviceBlock{}, with_graph_offset(a), d, stats, gout, t_rows, gk, gv);
}

// Checks D against the kernels' widest head, then calls launch with the register width
// (attention_block::with_register_width).
template <class Launch>
void with_head_width(const char* what, const AttentionDims& d, Launch launch) {
  MSMIX_CHECK(d.D >= 0 && d.D <= kAttentionMaxHeadDim,
              "cuda::{}: head width D = {} (E = {} over {} heads) is above the CUDA kernel's {}; use the composite "
              "attention (matmul, softmax, matmul) for wider heads",
              what, d.D, d.H * d.D, d.H, kAttentionMaxHeadDim);
  with_register_width(d.D, launch);
}

static_assert(kAttentionMaxHeadDim == kMaxRegisterWidth, "the kernels are built for heads up to kAttentionMaxHeadDim");

// Blocks for `tiles` tiles of one block each, capped (the kernels loop over the rest).
unsigned tile_blocks(int64_t tiles) { return unsigned(std::max<int64_t>(1, std::min<int64_t>(tiles, kMaxBlocks))); }

// Dynamic shared memory of a kernel that needs `floats` floats (at most 37 KiB, the keys kernel at DM = 16: no
// opt-in above 48 KiB needed).
constexpr size_t bytes_of(int floats) { return size_t(floats) * sizeof(float); }
template <int... DMs>
constexpr bool fits_without_opt_in() {
  return ((bytes_of(rows_shared_floats<DMs>()) <= 48 * 1024 && bytes_of(keys_shared_floats<DMs>()) <= 48 * 1024) &&
          ...);
}
static_assert(fits_without_opt_in<5, 8, 10, 16, 32, 64>(),  // every width with_register_width launches
              "the attention kernels' shared memory fits the 48 KiB a launch gets without opting in");

}  // namespace

void attention_forward(const AttentionArgs& a, const AttentionDims& d, float* out, float* stats) {
  with_head_width("attention_forward", d, [&](auto width) {
    constexpr int DM = decltype(width)::value;
    const int64_t tiles = d.B * d.H * ((d.L + kWarps - 1) / kWarps);  // (bh, block of rows)
    if (tiles == 0) return;                                           // no query row: nothing to write
    attention_forward_kernel<DM>
        <<<tile_blocks(tiles), kBlockThreads, bytes_of(rows_shared_floats<DM>())>>>(a, d, out, stats);
    CUDA_CHECK_LAUNCH("attention_forward_kernel");
  });
}

int64_t attention_dropout_words(const AttentionDims& d) { return d.B * d.H * d.L * dropout_row_words(d.S); }

void attention_backward(const AttentionArgs& a, const AttentionDims& d, const float* stats, const float* gout,
                        float* gq, float* gk, float* gv) {
  with_head_width("attention_backward", d, [&](auto width) {
    constexpr int DM = decltype(width)::value;
    if (!gq && !gk && !gv) return;
    MSMIX_CHECK(a.out || !(gq || gk),
                "cuda::attention_backward: dq and dk need the forward's output (AttentionArgs::out)");
    const int64_t row_tiles = d.B * d.H * ((d.L + kWarps - 1) / kWarps);
    const int64_t key_tiles = d.B * d.H * ((d.S + kWarps - 1) / kWarps);
    DeviceBuffer t_rows(size_t(d.B * d.H * d.L));  // [B H, L]: t = sum_s P dP per query row
    // t is needed by dq and dk; dv alone needs neither it nor the rows kernel.
    if ((gq || gk) && row_tiles > 0) {
      attention_backward_rows_kernel<DM><<<tile_blocks(row_tiles), kBlockThreads, bytes_of(rows_shared_floats<DM>())>>>(
          a, d, stats, gout, t_rows.get(), gq);
      CUDA_CHECK_LAUNCH("attention_backward_rows_kernel");
    }
    // Also with L = 0: the keys' grads are then 0 and must still be written.
    if ((gk || gv) && key_tiles > 0) {
      attention_backward_keys_kernel<DM><<<tile_blocks(key_tiles), kBlockThreads, bytes_of(keys_shared_floats<DM>())>>>(
          a, d, stats, gout, t_rows.get(), gk, gv);
      CUDA_CHECK_LAUNCH("attention_backward_keys_kernel");
    }
  });
}

}  // namespace msmix::cuda
