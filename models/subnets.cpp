#include "models/subnets.h"

#include "engine/error.h"
#include "ops/ops.h"

namespace msmix {

SubNet::SubNet(int64_t in_size_, int64_t hidden_size_, float dropout) : in_size(in_size_), hidden_size(hidden_size_) {
  MSMIX_CHECK(in_size > 0 && hidden_size > 0, "SubNet: sizes must be positive, got in={} hidden={}", in_size,
              hidden_size);
  norm = register_module("norm", std::make_shared<BatchNorm1d>(in_size));
  drop = register_module("drop", std::make_shared<Dropout>(dropout));
  linear_1 = register_module("linear_1", std::make_shared<Linear>(in_size, hidden_size));
  linear_2 = register_module("linear_2", std::make_shared<Linear>(hidden_size, hidden_size));
  linear_3 = register_module("linear_3", std::make_shared<Linear>(hidden_size, hidden_size));
}

Tensor SubNet::forward(const Tensor& x) {
  ProfileRange range(range_name());
  MSMIX_CHECK(x.defined() && x.dim() == 2 && x.size(1) == in_size, "SubNet({}, {}): expected input [B, {}], got {}",
              in_size, hidden_size, in_size, x.defined() ? describe(x) : std::string("undefined"));
  Tensor y = drop->forward(norm->forward(x));
  y = relu(linear_1->forward(y));
  y = relu(linear_2->forward(y));
  return relu(linear_3->forward(y));
}

TextSubNet::TextSubNet(int64_t in_size_, int64_t hidden_size_, int64_t out_size_, float dropout_)
    : in_size(in_size_), hidden_size(hidden_size_), out_size(out_size_) {
  MSMIX_CHECK(dropout_ >= 0 && dropout_ <= 1, "TextSubNet: dropout must be in [0, 1], got {}", dropout_);
  rnn = register_module("rnn", std::make_shared<LSTM>(in_size, hidden_size, 1, true, /*batch_first=*/true));
  dropout = register_module("dropout", std::make_shared<Dropout>(0.0f));  // 1 layer: MMSA zeroes it
  linear_1 = register_module("linear_1", std::make_shared<Linear>(hidden_size, out_size));
}

Tensor TextSubNet::forward(const Tensor& x) {
  ProfileRange range(range_name());
  MSMIX_CHECK(x.defined() && x.dim() == 3 && x.size(2) == in_size,
              "TextSubNet({}, {}, {}): expected text [B, T, {}], got {}", in_size, hidden_size, out_size, in_size,
              x.defined() ? describe(x) : std::string("undefined"));
  Tensor h = squeeze(rnn->forward(x).h_n, 0);  // [1, B, H] -> [B, H]
  return linear_1->forward(dropout->forward(h));
}

Tensor single_step(const Tensor& x, const std::string& model, const char* modality, int64_t features) {
  MSMIX_CHECK(x.defined(), "{}: {} input is undefined", model, modality);
  bool one_step = x.dim() == 2 || (x.dim() == 3 && x.size(1) == 1);
  MSMIX_CHECK(one_step && x.size(-1) == features,
              "{}: expected {} averaged over time, [B, 1, {}] or [B, {}] (need_normalized), got {}", model, modality,
              features, features, describe(x));
  return x.dim() == 3 ? squeeze(x, 1) : x;
}

Tensor prepend_one(const Tensor& h) {
  Tensor one = Tensor::ones({h.size(0), 1}, h.device());
  return concat({one, h}, 1);
}

void check_representation(const Tensor& z, const std::string& model, const char* which, int64_t width, int64_t batch) {
  MSMIX_CHECK(z.defined(), "{}: fuse: representation {} is undefined", model, which);
  MSMIX_CHECK(z.dim() == 2 && z.size(1) == width && (batch < 0 || z.size(0) == batch),
              "{}: fuse: representation {} must be [{}, {}], got {}", model, which,
              batch < 0 ? std::string("B") : std::to_string(batch), width, describe(z));
}

}  // namespace msmix
