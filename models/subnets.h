// MMSA's pre-fusion sub-networks (models/subNets/FeatureNets.py), shared by LF_DNN, TFN and LMF, with
// the same parameter and buffer names:
//   SubNet (audio, video):  x [B, in] -> BatchNorm1d `norm` -> Dropout `drop` -> 3 x (Linear `linear_k` + ReLU)
//   TextSubNet (text):      x [B, T, in] -> LSTM `rnn` (1 layer) -> final hidden state [B, hidden]
//                           -> Dropout `dropout` -> Linear `linear_1` (no activation) -> [B, out]
#pragma once
#include <memory>
#include <string>

#include "models/batch_norm.h"
#include "models/dropout.h"
#include "models/linear.h"
#include "models/lstm.h"

namespace msmix {

class SubNet : public Module {
 public:
  const char* kind() const override { return "SubNet"; }
  SubNet(int64_t in_size, int64_t hidden_size, float dropout);
  Tensor forward(const Tensor& x);  // [B, in] -> [B, hidden]

  int64_t in_size, hidden_size;
  std::shared_ptr<BatchNorm1d> norm;
  std::shared_ptr<Dropout> drop;
  std::shared_ptr<Linear> linear_1, linear_2, linear_3;
};

class TextSubNet : public Module {
 public:
  const char* kind() const override { return "TextSubNet"; }
  // MMSA builds a 1-layer LSTM and then sets the dropout to 0 (its rule: no dropout with one layer), so the
  // text dropout of the config never acts. `dropout` is accepted for the record and ignored the same way.
  TextSubNet(int64_t in_size, int64_t hidden_size, int64_t out_size, float dropout = 0.2f);
  // x [B, T, in] -> [B, out]. The LSTM runs over all T steps, padding included (MMSA packs nothing), and
  // the state after step T is used.
  Tensor forward(const Tensor& x);

  int64_t in_size, hidden_size, out_size;
  std::shared_ptr<LSTM> rnn;
  std::shared_ptr<Dropout> dropout;
  std::shared_ptr<Linear> linear_1;
};

// need_normalized inputs: audio or vision averaged over time, [B, 1, D] or [B, D] -> [B, D]. A longer time
// axis is an Error: these backbones see one step, and the averaging belongs to the data loader.
Tensor single_step(const Tensor& x, const std::string& model, const char* modality, int64_t features);

// [B, d] -> [B, 1 + d]: the constant 1 in front, as TFN and LMF put it (torch.cat((ones, h), dim=1)).
Tensor prepend_one(const Tensor& h);

// Checks a representation handed to fuse(): [B, width] with the batch size of the others.
void check_representation(const Tensor& z, const std::string& model, const char* which, int64_t width, int64_t batch);

}  // namespace msmix
