#include "models/lstm.h"

#include <cmath>
#include <string>

#include "engine/error.h"
#include "ops/lstm_cell.h"
#include "ops/ops.h"

namespace msmix {

LSTM::LSTM(int64_t input_size_, int64_t hidden_size_, int64_t num_layers_, bool bias_, bool batch_first_,
           bool bidirectional_, float dropout_)
    : input_size(input_size_),
      hidden_size(hidden_size_),
      num_layers(num_layers_),
      bias(bias_),
      batch_first(batch_first_),
      bidirectional(bidirectional_),
      dropout(dropout_) {
  MSMIX_CHECK(input_size > 0 && hidden_size > 0 && num_layers > 0,
              "LSTM: input_size, hidden_size and num_layers must be positive, got {}, {}, {}", input_size, hidden_size,
              num_layers);
  MSMIX_CHECK(dropout >= 0 && dropout <= 1, "LSTM: dropout must be in [0, 1], got {}", dropout);
  const int64_t H = hidden_size, D = bidirectional ? 2 : 1;
  const float bound = 1.0f / std::sqrt(float(H));
  auto param = [&](const std::string& name, const Shape& shape) {
    return register_parameter(name, Tensor::rand(shape, -bound, bound));
  };
  for (int64_t k = 0; k < num_layers; ++k) {
    int64_t in = k == 0 ? input_size : D * H;
    for (int64_t d = 0; d < D; ++d) {
      std::string suffix = "_l" + std::to_string(k) + (d == 1 ? "_reverse" : "");
      Weights w;  // PyTorch's registration order: weight_ih, weight_hh, bias_ih, bias_hh
      w.w_ih = param("weight_ih" + suffix, {4 * H, in});
      w.w_hh = param("weight_hh" + suffix, {4 * H, H});
      if (bias) {
        w.b_ih = param("bias_ih" + suffix, {4 * H});
        w.b_hh = param("bias_hh" + suffix, {4 * H});
      }
      weights_.push_back(w);
    }
  }
}

LSTMOutput LSTM::forward(const Tensor& x, const Tensor& lengths) {
  MSMIX_CHECK(lengths.defined(), "LSTM: undefined lengths tensor");
  MSMIX_CHECK(lengths.dim() == 1, "LSTM: lengths must be [B], got {}", describe(lengths));
  std::vector<int64_t> lens;
  for (float v : lengths.to_vector()) {
    MSMIX_CHECK(std::isfinite(v) && v == std::floor(v), "LSTM: length {} is not an integer", v);
    lens.push_back(int64_t(v));
  }
  return forward(x, lens);
}

LSTMOutput LSTM::forward(const Tensor& x, const std::vector<int64_t>& lengths) {
  ProfileRange range(range_name());
  MSMIX_CHECK(x.defined(), "LSTM: undefined input");
  MSMIX_CHECK(x.dim() == 3 && x.size(2) == input_size, "LSTM({}, {}): expected input {} with {} features, got {}",
              input_size, hidden_size, batch_first ? "[B, T, in]" : "[T, B, in]", input_size, describe(x));
  // Time-major inside: each step's rows are contiguous, so the scan reads [B, 4H] blocks.
  Tensor layer_in = batch_first ? transpose(x, 0, 1) : x;  // [T, B, in]
  const int64_t T = layer_in.size(0), B = layer_in.size(1), D = bidirectional ? 2 : 1;
  MSMIX_CHECK(lengths.empty() || int64_t(lengths.size()) == B, "LSTM: {} lengths for a batch of {} (input {})",
              lengths.size(), B, shape_str(x.shape()));
  for (int64_t len : lengths)
    MSMIX_CHECK(len >= 0 && len <= T, "LSTM: length {} outside [0, {}] (input {})", len, T, shape_str(x.shape()));

  std::vector<Tensor> h_n, c_n;  // one [1, B, H] per layer and direction, in PyTorch's order
  for (int64_t k = 0; k < num_layers; ++k) {
    std::vector<Tensor> outputs;
    for (int64_t d = 0; d < D; ++d) {
      const Weights& w = weights_[size_t(k * D + d)];
      Tensor y = lstm_layer(layer_in, w.w_ih, w.w_hh, w.b_ih, w.b_hh, lengths, d == 1);  // [T + 2, B, H]
      std::vector<Tensor> parts = split(y, {T, 1, 1}, 0);
      outputs.push_back(parts[0]);
      h_n.push_back(parts[1]);
      c_n.push_back(parts[2]);
    }
    layer_in = D == 1 ? outputs[0] : concat(outputs, 2);  // [T, B, D * H]
    if (k + 1 < num_layers && dropout > 0 && is_training()) layer_in = msmix::dropout(layer_in, dropout, true);
  }
  LSTMOutput out;
  out.output = batch_first ? transpose(layer_in, 0, 1) : layer_in;
  out.h_n = concat(h_n, 0);
  out.c_n = concat(c_n, 0);
  return out;
}

}  // namespace msmix
