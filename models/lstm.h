// LSTM as torch.nn.LSTM: the same parameter names, shapes, order and initialisation, so a PyTorch/MMSA
// state dict loads one-to-one. Variable-length batches take per-sample lengths with the semantics of
// pack_padded_sequence(enforce_sorted=False) + pad_packed_sequence(total_length=T).
//
// Per layer and direction, lstm_layer (ops/lstm_cell.h): x @ W_ih^T + (b_ih + b_hh) for all time steps in one
// GEMM, then the recurrence (per step h @ W_hh^T and the fused cell) in one lstm_scan node; on the GPU with
// MSMIX_CUDA_LSTM=cudnn (or cudnn-persistent), forward directions run cuDNN's LSTM instead. Nothing recurses,
// so T in the thousands is fine.
#pragma once
#include <vector>

#include "models/module.h"

namespace msmix {

struct LSTMOutput {
  Tensor output;  // [B, T, D * H] (batch_first) or [T, B, D * H]; 0 past each sample's length
  Tensor h_n;     // [num_layers * D, B, H], row layer * D + direction, as PyTorch
  Tensor c_n;     // same layout as h_n
};

class LSTM : public Module {
 public:
  const char* kind() const override { return "LSTM"; }
  // Parameters per layer k and direction (suffix "" or "_reverse"): weight_ih_l<k> [4H, in_k],
  // weight_hh_l<k> [4H, H], bias_ih_l<k> [4H], bias_hh_l<k> [4H]; in_0 = input_size, in_k = D * H after.
  // All ~ U(-1/sqrt(H), 1/sqrt(H)). dropout: applied to each layer's output but the last, in training.
  LSTM(int64_t input_size, int64_t hidden_size, int64_t num_layers = 1, bool bias = true, bool batch_first = true,
       bool bidirectional = false, float dropout = 0);

  // x [B, T, input_size] (batch_first) or [T, B, input_size]. lengths: empty (every sample has T steps), or
  // one per sample in [0, T]. Each sample's final state is its state after its own last step; the reverse
  // direction starts at that step. (PyTorch rejects length 0; here such a sample keeps the zero state and
  // outputs zeros.) Initial states are zero.
  LSTMOutput forward(const Tensor& x, const std::vector<int64_t>& lengths = {});
  LSTMOutput forward(const Tensor& x, const Tensor& lengths);  // lengths [B], integral values (any device)

  int64_t input_size, hidden_size, num_layers;
  bool bias, batch_first, bidirectional;
  float dropout;

 private:
  struct Weights {
    Tensor w_ih, w_hh, b_ih, b_hh;  // biases undefined without bias
  };
  std::vector<Weights> weights_;  // index layer * D + direction
};

}  // namespace msmix
