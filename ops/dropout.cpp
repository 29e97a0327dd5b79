// dropout: keeps each element with probability 1 - p and scales it by 1 / (1 - p).
// Memory choice: the mask is not saved. Each call takes one stretch of the generator's Philox stream
// (seed, offset), and backward regenerates the same mask from it: no [numel] mask tensor lives until
// backward, at the cost of recomputing Philox (10 cheap rounds per 4 elements), as a CUDA kernel would.
#include "engine/error.h"
#include "engine/profile.h"
#include "engine/random.h"
#include "ops/cpu/dropout.h"
#include "ops/cuda/kernels.h"
#include "ops/ops.h"

namespace msmix {

Tensor dropout(const Tensor& x, float p, bool training, Generator& gen) {
  MSMIX_OP_RANGE("dropout");
  MSMIX_CHECK(x.defined(), "dropout: undefined input");
  MSMIX_CHECK(p >= 0 && p <= 1, "dropout: probability must be in [0, 1], got {} for x {}", p, describe(x));
  if (!training || p == 0) return x;  // identity: no copy, no draw from the generator

  const int64_t n = x.numel();
  const uint64_t seed = gen.seed;
  // Inside a captured graph step the offset is read on the device at each replay (engine/random.h).
  const KernelOffset drawn =
      kernel_offset(gen, gen.take(Generator::uniform_blocks(uint64_t(n))), x.is_cuda(), "dropout");
  const uint64_t offset = drawn.offset;
  const uint64_t* base = drawn.base;
  // p == 1 drops everything (no uniform in [0, 1) is >= 1); scale 0 avoids 0 * inf.
  const float scale = p < 1 ? 1.0f / (1.0f - p) : 0.0f;
  Tensor y = Tensor::empty(x.shape(), x.device());
  if (x.is_cuda()) cuda::dropout_apply(x.data(), y.data(), n, p, scale, seed, offset, base);
  else cpu::dropout_apply(x.data(), y.data(), n, p, scale, seed, offset);

  if (any_requires_grad({&x})) {
    record(y, "dropout", {x}, [n, p, scale, seed, offset, base](const Tensor& g, const std::vector<bool>&) {
      Tensor gx = Tensor::empty(g.shape(), g.device());
      if (g.is_cuda()) cuda::dropout_apply(g.data(), gx.data(), n, p, scale, seed, offset, base);
      else cpu::dropout_apply(g.data(), gx.data(), n, p, scale, seed, offset);
      return Grads{gx};
    });
  }
  return y;
}

Tensor dropout(const Tensor& x, float p, bool training) { return dropout(x, p, training, default_generator()); }

}  // namespace msmix
