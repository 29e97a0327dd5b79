// Conv1d with stride 1 and zero padding on both sides, as torch.nn.Conv1d(Cin, Cout, K, padding=padding):
// same names, shapes and initialisation.
#pragma once
#include "models/module.h"

namespace msmix {

class Conv1d : public Module {
 public:
  const char* kind() const override { return "Conv1d"; }
  // weight [Cout, Cin, K] ~ kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(Cin*K), 1/sqrt(Cin*K)); bias [Cout] ~
  // the same.
  Conv1d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t padding = 0, bool bias = true);
  Tensor forward(const Tensor& x) const;  // x [N, Cin, L] -> [N, Cout, L + 2 * padding - K + 1]
  // Sequences stored time-major, as the backbones keep them: x [N, L, Cin] -> [N, L + 2 * padding - K + 1, Cout].
  Tensor forward_time_major(const Tensor& x) const;

  int64_t in_channels, out_channels, kernel_size, padding;
  Tensor weight, bias;  // bias undefined when built without one
};

}  // namespace msmix
