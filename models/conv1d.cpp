#include "models/conv1d.h"

#include <cmath>

#include "engine/error.h"
#include "models/init.h"
#include "ops/ops.h"

namespace msmix {

Conv1d::Conv1d(int64_t in_channels_, int64_t out_channels_, int64_t kernel_size_, int64_t padding_, bool with_bias)
    : in_channels(in_channels_), out_channels(out_channels_), kernel_size(kernel_size_), padding(padding_) {
  MSMIX_CHECK(in_channels > 0 && out_channels > 0 && kernel_size > 0 && padding >= 0,
              "Conv1d: expected positive channels and kernel size and padding >= 0, got in={} out={} kernel={} "
              "padding={}",
              in_channels, out_channels, kernel_size, padding);
  weight = register_parameter("weight", Tensor::empty({out_channels, in_channels, kernel_size}));
  init::kaiming_uniform_(weight);
  if (with_bias) {
    bias = register_parameter("bias", Tensor::empty({out_channels}));
    float bound = 1.0f / std::sqrt(float(in_channels * kernel_size));  // fan_in of weight
    init::uniform_(bias, -bound, bound);
  }
}

Tensor Conv1d::forward(const Tensor& x) const {
  ProfileRange range(range_name());
  return conv1d(x, weight, bias, padding);
}

Tensor Conv1d::forward_time_major(const Tensor& x) const { return transpose(forward(transpose(x, 1, 2)), 1, 2); }

}  // namespace msmix
