#include "models/linear.h"

#include <cmath>

#include "engine/error.h"
#include "models/init.h"
#include "ops/ops.h"

namespace msmix {

Linear::Linear(int64_t in_features_, int64_t out_features_, bool with_bias)
    : in_features(in_features_), out_features(out_features_) {
  MSMIX_CHECK(in_features >= 0 && out_features >= 0, "Linear: feature counts must be >= 0, got in={} out={}",
              in_features, out_features);
  weight = register_parameter("weight", Tensor::empty({out_features, in_features}));
  init::kaiming_uniform_(weight);
  if (with_bias) {
    bias = register_parameter("bias", Tensor::empty({out_features}));
    float bound = in_features > 0 ? 1.0f / std::sqrt(float(in_features)) : 0.0f;
    init::uniform_(bias, -bound, bound);
  }
}

Tensor Linear::forward(const Tensor& x) {
  ProfileRange range(range_name());
  MSMIX_CHECK(x.defined(), "Linear: undefined input");
  MSMIX_CHECK(x.dim() >= 1 && x.size(-1) == in_features, "Linear({}, {}): expected input [..., {}], got {}",
              in_features, out_features, in_features, describe(x));
  return linear(x, weight, bias);
}

}  // namespace msmix
