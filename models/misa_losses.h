// MISA's three regularisers (MMSA v2.2.1, trains/singleTask/MISA.py), each over a batch of vectors [B, d]:
//   misa_diff_loss: soft orthogonality of two batches. Centre each column over the batch, divide each row by its
//     L2 norm (a constant: no gradient flows through the norm) + 1e-6, then mean((X1^T X2)^2) over the d x d
//     entries. MISA applies it to private/shared pairs and to pairs of private vectors.
//   central_moment_discrepancy (CMD): ||mean(x1) - mean(x2)||_2 + sum over k = 2..moments of
//     ||mean((x1 - mean x1)^k) - mean((x2 - mean x2)^k)||_2, means over the batch. MISA: between the shared
//     vectors of each pair of modalities, 5 moments.
//   reconstruction: mean((reconstruction - target)^2) is mse_loss (ops/ops.h) with the mean reduction.
#pragma once
#include "engine/tensor.h"

namespace msmix {

Tensor misa_diff_loss(const Tensor& x1, const Tensor& x2);                           // [B, d] x2 -> rank 0
Tensor central_moment_discrepancy(const Tensor& x1, const Tensor& x2, int moments);  // [B, d] x2 -> rank 0

}  // namespace msmix
