// Fused LSTM ops, PyTorch's gate order (i, f, g, o):
//   i = sigmoid, f = sigmoid, g = tanh, o = sigmoid;  c = f * c_prev + i * g;  h = o * tanh(c).
//
// Our autograd nodes have one output, so each op packs its results into one tensor along dim 0 and the
// caller slices them out (a dim-0 slice is one contiguous copy, its backward one zero-padded grad):
//   lstm_cell -> [2, B, H]:     h, then c.
//   lstm_scan -> [T + 2, B, H]: the outputs y_0 .. y_{T-1}, then the final h, then the final c.
//
// Why lstm_scan exists beside lstm_cell: an LSTM layer computes x @ W_ih^T + b for all steps in one GEMM,
// and each step then needs its [B, 4H] slice of that. With one autograd node per step, every slice's
// backward materialises a grad the size of the whole [T, B, 4H] projection, so backward over T steps would
// cost O(T^2) memory traffic (gigabytes at T = 500). lstm_scan runs the whole recurrence of one layer and
// direction in one node: per step one GEMM (h @ W_hh^T) and the fused cell, and in backward per step the
// fused cell backward and one GEMM, then a single GEMM for W_hh's grad over all steps. Both ops share the
// same per-sample cell kernels (ops/cpu/lstm_cell.cpp); lstm_cell is the step a user composes by hand
// (LSTMCell-style) and the reference that lstm_scan is tested against.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace msmix {

// gates [B, 4H] (pre-activation: x W_ih^T + b_ih + h_prev W_hh^T + b_hh), c_prev [B, H] -> [2, B, H].
Tensor lstm_cell(const Tensor& gates, const Tensor& c_prev);

// One direction of one LSTM layer over a padded batch.
// xgates [T, B, 4H] (time-major x @ W_ih^T + b_ih + b_hh), w_hh [4H, H], h0 and c0 [B, H] (undefined: zeros),
// lengths: one per sample in [0, T] (empty: all T). Sample b takes part in steps t < lengths[b] only:
// forward (reverse = false) runs t = 0 .. T-1 and its state freezes after the sample's last step; reverse
// runs t = T-1 .. 0 and its state stays h0/c0 until the sample's last valid step, so it starts there (as a
// packed sequence). Returns [T + 2, B, H]: y_t = h_t for valid steps and 0 past the length (as
// pad_packed_sequence), then h_n and c_n, the state after each sample's last processed step.
Tensor lstm_scan(const Tensor& xgates, const Tensor& w_hh, const Tensor& h0, const Tensor& c0,
                 const std::vector<int64_t>& lengths = {}, bool reverse = false);

// One direction of one LSTM layer from a zero state, as torch.nn.LSTM's: x [T, B, I], w_ih [4H, I], w_hh [4H, H],
// b_ih and b_hh [4H] (both, or both undefined), lengths and reverse as lstm_scan's -> [T + 2, B, H] as
// lstm_scan's. It is linear(x, w_ih, b_ih + b_hh) then lstm_scan, but on the GPU with MSMIX_CUDA_LSTM=cudnn (or
// cudnn-persistent) a forward direction whose samples all have a step is one node through cuDNN's LSTM
// (ops/cuda/lstm_cudnn.cu).
Tensor lstm_layer(const Tensor& x, const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh,
                  const std::vector<int64_t>& lengths = {}, bool reverse = false);

}  // namespace msmix
