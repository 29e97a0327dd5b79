// Gradient clipping, as torch.nn.utils.clip_grad_value_ / clip_grad_norm_ (PyTorch 1.13), in place on the
// grads of `params`; parameters without a grad are ignored.
#pragma once
#include <vector>

#include "engine/tensor.h"

namespace msmix {

// Clamps every grad element to [-clip_value, clip_value]. NaN stays NaN.
void clip_grad_value(const std::vector<Tensor>& params, float clip_value);

// Computes the global L2 norm of all grads together (as if concatenated) and, when it exceeds max_norm,
// scales every grad by max_norm / (norm + 1e-6). Returns the norm before clipping as a [] tensor on the
// grads' device (0 on the CPU when no grad exists): on a GPU nothing is read back unless the caller reads it
// (.item()). A non-finite norm (an inf or NaN grad) is returned as is and the grads are left untouched: the
// caller decides, typically by skipping the optimizer step. PyTorch would instead multiply every grad by the
// NaN or 0 coefficient. The grads must share one device.
Tensor clip_grad_norm(const std::vector<Tensor>& params, float max_norm);

}  // namespace msmix
