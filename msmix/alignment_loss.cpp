#include "msmix/alignment_loss.h"

#include "engine/error.h"
#include "ops/ops.h"

namespace msmix {

namespace {

// |x| / s -> softmax over the batch -> + 1e-8.   x [B] -> [B]
Tensor batch_distribution(const Tensor& x, float s) { return add(softmax(div(abs(x), s)), kAlignmentFloor); }

// [B] or [B, 1] -> [B]; anything else is an error naming `what`.
Tensor as_batch_vector(const Tensor& x, const char* what) {
  MSMIX_CHECK(x.defined() && (x.dim() == 1 || (x.dim() == 2 && x.size(1) == 1)),
              "alignment_loss: {} must be [B] or [B, 1], got {}", what, x.defined() ? describe(x) : "undefined");
  return x.dim() == 1 ? x : reshape(x, {x.size(0)});
}

}  // namespace

Tensor alignment_loss(const Tensor& labels, const std::vector<Tensor>& intensities, float s, float weight) {
  MSMIX_CHECK(s > 0, "alignment_loss: scale s must be > 0, got {}", s);
  MSMIX_CHECK(!intensities.empty(), "alignment_loss: no intensities given");
  Tensor y = as_batch_vector(labels, "labels");
  const int64_t B = y.size(0);
  MSMIX_CHECK(B > 0, "alignment_loss: empty batch");
  Tensor q = batch_distribution(y, s);  // [B]
  Tensor total;
  for (size_t m = 0; m < intensities.size(); ++m) {
    Tensor intensity = as_batch_vector(intensities[m], "an intensity");
    MSMIX_CHECK(intensity.size(0) == B, "alignment_loss: batch sizes differ: labels {}, intensity {} is {}",
                describe(labels), m, describe(intensities[m]));
    Tensor p = batch_distribution(intensity, s);
    Tensor kl = kl_div(log(p), q, Reduction::BatchMean);  // sum_b q (log q - log p) / B
    total = total.defined() ? add(total, kl) : kl;
  }
  return mul(total, weight);
}

}  // namespace msmix
