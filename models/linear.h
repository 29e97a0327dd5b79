// Linear: y = x @ weight^T + bias, as torch.nn.Linear (same names, shapes and initialisation).
#pragma once
#include "models/module.h"

namespace msmix {

class Linear : public Module {
 public:
  const char* kind() const override { return "Linear"; }
  // weight [out, in] ~ kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)); bias [out] ~ the same.
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& x);  // x [..., in] -> [..., out]

  int64_t in_features, out_features;
  Tensor weight, bias;  // bias undefined when built without one
};

}  // namespace msmix
