// LayerNorm over the last dim, as torch.nn.LayerNorm(C) (a single normalized dim).
#pragma once
#include "models/module.h"

namespace msmix {

class LayerNorm : public Module {
 public:
  const char* kind() const override { return "LayerNorm"; }
  // affine: weight [C] = 1 and bias [C] = 0; without it neither is registered.
  explicit LayerNorm(int64_t normalized_size, float eps = 1e-5f, bool elementwise_affine = true);
  Tensor forward(const Tensor& x);  // x [..., C] -> [..., C]

  int64_t normalized_size;
  float eps;
  Tensor weight, bias;
};

}  // namespace msmix
