// Parameter initialisation with PyTorch's default distributions (torch.nn.init), drawn from msmix's
// default_generator() (Philox): the values differ from PyTorch's, the distributions are the same.
// Every function fills `t` in place, unrecorded by autograd, on whatever device it lives.
#pragma once
#include <cmath>
#include <utility>

#include "engine/tensor.h"

namespace msmix::init {

// (fan_in, fan_out) as PyTorch computes them: a weight [out, in, k...] has receptive field prod(k...),
// fan_in = in * receptive, fan_out = out * receptive. Needs at least 2 dims.
std::pair<int64_t, int64_t> fan_in_and_fan_out(const Tensor& t);

void uniform_(Tensor& t, float lo = 0, float hi = 1);
void normal_(Tensor& t, float mean = 0, float std = 1);
void zeros_(Tensor& t);
void ones_(Tensor& t);
// U(-bound, bound) with bound = gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2)) (leaky_relu, mode
// fan_in). The default a = sqrt(5) is what nn.Linear and nn.Conv1d use: bound = 1 / sqrt(fan_in).
void kaiming_uniform_(Tensor& t, float a = std::sqrt(5.0f));
// U(-bound, bound) with bound = gain * sqrt(6 / (fan_in + fan_out)).
void xavier_uniform_(Tensor& t, float gain = 1);

}  // namespace msmix::init
