// BatchNorm1d over channel dim 1 of x [N, C] or [N, C, L], as torch.nn.BatchNorm1d: batch statistics in
// training (and running stats updated with `momentum`), running stats in eval.
#pragma once
#include "models/module.h"

namespace msmix {

class BatchNorm1d : public Module {
 public:
  const char* kind() const override { return "BatchNorm1d"; }
  // affine: weight [C] = 1, bias [C] = 0. track_running_stats: buffers running_mean [C] = 0,
  // running_var [C] = 1 and num_batches_tracked []; without it none of them exists and batch statistics
  // are used in eval too (as PyTorch).
  explicit BatchNorm1d(int64_t num_features, float eps = 1e-5f, float momentum = 0.1f, bool affine = true,
                       bool track_running_stats = true);
  Tensor forward(const Tensor& x);

  int64_t num_features;
  float eps, momentum;
  Tensor weight, bias;
  Tensor running_mean, running_var;
  // Training forward calls so far. PyTorch stores it as an int64 scalar; msmix has one dtype, so it is a
  // float32 scalar here (exact up to 2^24 steps). Only counted: momentum is always the fixed number above.
  Tensor num_batches_tracked;
};

}  // namespace msmix
