// Embedding: a lookup table, as torch.nn.Embedding(V, D, padding_idx).
#pragma once
#include "models/module.h"

namespace msmix {

class Embedding : public Module {
 public:
  const char* kind() const override { return "Embedding"; }
  // weight [V, D] ~ N(0, 1). padding_idx in [0, V): that row starts at zero and never receives a grad
  // (its output stays whatever the row holds, e.g. after load_state_dict). -1: no padding row (unlike
  // PyTorch, where a negative padding_idx counts from the end).
  Embedding(int64_t num_embeddings, int64_t embedding_dim, int64_t padding_idx = -1);
  Tensor forward(const Tensor& ids);  // ids [...] (integral float32 values in [0, V)) -> [..., D]

  int64_t num_embeddings, embedding_dim, padding_idx;
  Tensor weight;
};

}  // namespace msmix
