// row_ranks: the order of each row's entries (ops/cpu/row_ranks.h), for top-k gates. Not differentiated.
#include "engine/error.h"
#include "engine/profile.h"
#include "ops/cpu/row_ranks.h"
#include "ops/cuda/kernels.h"
#include "ops/ops.h"

namespace msmix {

Tensor row_ranks(const Tensor& x) {
  MSMIX_OP_RANGE("row_ranks");
  MSMIX_CHECK(x.defined() && x.dim() == 2, "row_ranks: expected x [R, C], got {}",
              x.defined() ? describe(x) : "undefined");
  Tensor ranks = Tensor::empty(x.shape(), x.device());
  (x.is_cuda() ? cuda::row_ranks : cpu::row_ranks)(x.data(), x.size(0), x.size(1), ranks.data());
  return ranks;
}

}  // namespace msmix
