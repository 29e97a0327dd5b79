#include "models/layer_norm.h"

#include "engine/error.h"
#include "ops/ops.h"

namespace msmix {

LayerNorm::LayerNorm(int64_t normalized_size_, float eps_, bool elementwise_affine)
    : normalized_size(normalized_size_), eps(eps_) {
  MSMIX_CHECK(normalized_size >= 0, "LayerNorm: size must be >= 0, got {}", normalized_size);
  if (elementwise_affine) {
    weight = register_parameter("weight", Tensor::ones({normalized_size}));
    bias = register_parameter("bias", Tensor::zeros({normalized_size}));
  }
}

Tensor LayerNorm::forward(const Tensor& x) {
  ProfileRange range(range_name());
  MSMIX_CHECK(x.defined(), "LayerNorm: undefined input");
  MSMIX_CHECK(x.dim() >= 1 && x.size(-1) == normalized_size, "LayerNorm({}): expected input [..., {}], got {}",
              normalized_size, normalized_size, describe(x));
  return layer_norm(x, weight, bias, eps);
}

}  // namespace msmix
