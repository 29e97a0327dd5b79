#include "models/embedding.h"

#include <algorithm>

#include "engine/error.h"
#include "models/init.h"
#include "ops/ops.h"

namespace msmix {

Embedding::Embedding(int64_t num_embeddings_, int64_t embedding_dim_, int64_t padding_idx_)
    : num_embeddings(num_embeddings_), embedding_dim(embedding_dim_), padding_idx(padding_idx_) {
  MSMIX_CHECK(num_embeddings >= 0 && embedding_dim >= 0, "Embedding: sizes must be >= 0, got V={} D={}",
              num_embeddings, embedding_dim);
  MSMIX_CHECK(padding_idx == -1 || (padding_idx >= 0 && padding_idx < num_embeddings),
              "Embedding: padding_idx must be -1 (none) or in [0, {}), got {}", num_embeddings, padding_idx);
  weight = register_parameter("weight", Tensor::empty({num_embeddings, embedding_dim}));
  init::normal_(weight);
  // A module is built on the CPU (to() moves it): zero the padding row in place.
  if (padding_idx >= 0) std::fill_n(weight.data() + padding_idx * embedding_dim, embedding_dim, 0.0f);
}

Tensor Embedding::forward(const Tensor& ids) {
  ProfileRange range(range_name());
  Tensor out = embedding(ids, weight);  // [..., D]
  if (padding_idx < 0 || !weight.requires_grad() || !grad_mode_enabled()) return out;
  // PyTorch gives the padding row no grad. Positions holding padding_idx take the row detached instead:
  // same values, and the where() sends their grad nowhere.
  Tensor pad = unsqueeze(eq(ids, Tensor::scalar(float(padding_idx), ids.device())), -1);  // [..., 1]
  Tensor row = slice(weight.detach(), 0, padding_idx, padding_idx + 1);                  // [1, D]
  return where(pad, row, out);
}

}  // namespace msmix
