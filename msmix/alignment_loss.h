// Sentiment Alignment Loss (SAL, shared/spec/msmix.md section 3): pulls each modality's predicted
// intensities towards the batch's label magnitudes. Labels do not become bins: a softmax runs across the
// batch, turning B magnitudes into one distribution.
//
//   q   = softmax_b(|y_b| / s) + 1e-8                       [B]  (labels)
//   p^m = softmax_b(|I^m_b| / s) + 1e-8                     [B]  (intensities of modality m)
//   L_SAL = weight * sum_m (1 / B) sum_b q_b (log q_b - log p^m_b)
//
// which is the released code's `weight * sum_m F.kl_div(p^m.log(), q, reduction='batchmean')` on 1-D [B]
// tensors: batchmean divides the summed pointwise terms by size(0) = B. It is KL(q || p^m) / B, labels
// against intensities. The + 1e-8 is added after the softmax and not renormalised, as the code does.
#pragma once
#include <vector>

#include "engine/tensor.h"

namespace msmix {

constexpr float kAlignmentFloor = 1e-8f;  // added to both distributions after the softmax

// labels [B] or [B, 1]; intensities: one [B] (or [B, 1]) tensor per modality. s: 3 for labels in [-3, 3]
// (MOSI, MOSEI), 1 for SIMS. weight: 1000 in MS-Mix. Returns a rank-0 tensor; differentiable in the
// intensities (and in the labels if they require grad).
Tensor alignment_loss(const Tensor& labels, const std::vector<Tensor>& intensities, float s = 3.0f,
                      float weight = 1000.0f);

}  // namespace msmix
