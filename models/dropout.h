// Dropout as torch.nn.Dropout: in training zeroes each element with probability p and scales the rest by
// 1 / (1 - p); in eval the identity. Masks come from the default generator.
#pragma once
#include "models/module.h"

namespace msmix {

class Dropout : public Module {
 public:
  const char* kind() const override { return "Dropout"; }
  explicit Dropout(float p = 0.5f);
  Tensor forward(const Tensor& x);

  float p;
};

}  // namespace msmix
