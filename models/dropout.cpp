#include "models/dropout.h"

#include "engine/error.h"
#include "ops/ops.h"

namespace msmix {

Dropout::Dropout(float p_) : p(p_) {
  MSMIX_CHECK(p >= 0 && p <= 1, "Dropout: probability must be in [0, 1], got {}", p);
}

Tensor Dropout::forward(const Tensor& x) {
  ProfileRange range(range_name());
  return dropout(x, p, is_training());
}

}  // namespace msmix
