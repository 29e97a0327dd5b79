#include "models/batch_norm.h"

#include "engine/autograd.h"
#include "engine/error.h"
#include "ops/ops.h"

namespace msmix {

BatchNorm1d::BatchNorm1d(int64_t num_features_, float eps_, float momentum_, bool affine, bool track_running_stats)
    : num_features(num_features_), eps(eps_), momentum(momentum_) {
  MSMIX_CHECK(num_features >= 0, "BatchNorm1d: num_features must be >= 0, got {}", num_features);
  MSMIX_CHECK(momentum >= 0 && momentum <= 1, "BatchNorm1d: momentum must be in [0, 1], got {}", momentum);
  if (affine) {
    weight = register_parameter("weight", Tensor::ones({num_features}));
    bias = register_parameter("bias", Tensor::zeros({num_features}));
  }
  if (track_running_stats) {
    running_mean = register_buffer("running_mean", Tensor::zeros({num_features}));
    running_var = register_buffer("running_var", Tensor::ones({num_features}));
    num_batches_tracked = register_buffer("num_batches_tracked", Tensor::scalar(0));
  }
}

Tensor BatchNorm1d::forward(const Tensor& x) {
  ProfileRange range(range_name());
  MSMIX_CHECK(x.defined(), "BatchNorm1d: undefined input");
  MSMIX_CHECK((x.dim() == 2 || x.dim() == 3) && x.size(1) == num_features,
              "BatchNorm1d({}): expected input [N, {}] or [N, {}, L], got {}", num_features, num_features,
              num_features, describe(x));
  Tensor y = batch_norm(x, weight, bias, running_mean, running_var, is_training(), momentum, eps);
  if (is_training() && num_batches_tracked.defined()) {
    NoGradGuard no_grad;  // a buffer: stays on its device, never recorded
    num_batches_tracked.copy_(add(num_batches_tracked, 1.0f));
  }
  return y;
}

}  // namespace msmix
