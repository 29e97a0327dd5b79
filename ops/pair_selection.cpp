#include "ops/pair_selection.h"

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/profile.h"
#include "ops/cpu/pair_selection.h"
#include "ops/cuda/kernels.h"
#include "ops/ops.h"

namespace msmix {

Tensor selection_draws(int64_t B, Generator& gen, Device device) {
  return Tensor::from_vector(selection_draw_values(B, gen), {B, cpu::kDrawParts}, device);
}

std::vector<float> selection_draw_values(int64_t B, Generator& gen) {
  MSMIX_CHECK(B >= 1, "selection_draws: B must be >= 1, got {}", B);
  std::vector<float> v(size_t(B * cpu::kDrawParts), 0.0f);
  if (B > 1) {  // B = 1 has one pair, (0, 0), and draws nothing (as a host selection would)
    for (int64_t k = 0; k < B; ++k) {
      const uint64_t r = gen.next_u64();  // what the k-th randint call would reduce
      for (int p = 0; p < cpu::kDrawParts; ++p)
        v[size_t(k * cpu::kDrawParts + p)] = float((r >> (16 * (cpu::kDrawParts - 1 - p))) & 0xffffu);
    }
  }
  return v;
}

SelectedPairs select_pairs(const Tensor& similarity, float delta, const Tensor& draws) {
  MSMIX_OP_RANGE("select_pairs");
  MSMIX_CHECK(similarity.defined() && draws.defined(), "select_pairs: undefined input");
  const Device dev = common_device("select_pairs", {&similarity, &draws});
  MSMIX_CHECK(similarity.dim() == 2 && similarity.size(0) == similarity.size(1),
              "select_pairs: similarity must be [B, B], got {}", describe(similarity));
  const int64_t B = similarity.size(0);
  MSMIX_CHECK(B >= 1 && B <= kMaxSelectionBatch, "select_pairs: batch size {} is outside [1, {}]", B,
              kMaxSelectionBatch);
  MSMIX_CHECK(draws.shape() == Shape({B, cpu::kDrawParts}), "select_pairs: draws must be [{}, {}], got {}", B,
              cpu::kDrawParts, describe(draws));
  MSMIX_CHECK(delta == delta, "select_pairs: delta is NaN");
  NoGradGuard no_grad;
  Tensor pairs = Tensor::empty({2, B}, dev), stats = Tensor::empty({cpu::kSelectionStats}, dev);
  if (dev.is_cuda()) {
    Tensor workspace = Tensor::empty({cuda::pair_selection_workspace(B)}, dev);
    cuda::select_pairs(similarity.data(), B, delta, draws.data(), pairs.data(), stats.data(), workspace.data());
  } else {
    cpu::select_pairs(similarity.data(), B, delta, draws.data(), pairs.data(), stats.data());
  }
  return {bounded_index(slice(pairs, 0, 0, 1), B), bounded_index(slice(pairs, 0, 1, 2), B), stats};
}

}  // namespace msmix
