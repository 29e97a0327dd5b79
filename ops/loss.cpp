// Losses. Each computes per-element (or per-row, for cross_entropy) losses in one fused kernel with its own
// backward, then reduces them with the sum / mean ops, whose backward spreads the grad back.
// Shapes must match exactly: PyTorch broadcasts pred [N, 1] against target [N] to [N, N] with only a warning,
// a classic silent bug, so msmix refuses it.
#include <cmath>

#include "engine/error.h"
#include "engine/profile.h"
#include "ops/cpu/loss.h"
#include "ops/cuda/kernels.h"
#include "ops/ops.h"

namespace msmix {
namespace {

const char* reduction_name(Reduction r) {
  switch (r) {
    case Reduction::None: return "none";
    case Reduction::Mean: return "mean";
    case Reduction::Sum: return "sum";
    case Reduction::BatchMean: return "batchmean";
  }
  return "?";
}

// Checks the reduction can be applied to `losses` (so errors name the loss, not the reduce op), then applies it.
Tensor reduce_loss(const char* op, const Tensor& losses, Reduction reduction) {
  switch (reduction) {
    case Reduction::None: return losses;
    case Reduction::Sum: return sum(losses);
    case Reduction::Mean:
      MSMIX_CHECK(losses.numel() > 0, "{}: reduction mean over no elements ({})", op, describe(losses));
      return mean(losses);
    case Reduction::BatchMean:
      MSMIX_CHECK(losses.dim() >= 1 && losses.size(0) > 0,
                  "{}: reduction batchmean needs a batch dim of size > 0, got {}", op, describe(losses));
      return mul(sum(losses), 1.0f / float(losses.size(0)));
  }
  return losses;
}

Tensor pointwise_loss(PointwiseLoss kind, const char* op, const char* pred_name, const Tensor& pred,
                      const Tensor& target, float beta, Reduction reduction) {
  MSMIX_CHECK(pred.defined() && target.defined(), "{}: undefined input", op);
  MSMIX_CHECK(pred.shape() == target.shape(),
              "{}: {} {} and target {} differ in shape; losses do not broadcast (reshape one side to match)", op,
              pred_name, describe(pred), describe(target));
  MSMIX_CHECK(reduction != Reduction::BatchMean || kind == PointwiseLoss::KlDiv,
              "{}: reduction batchmean is for kl_div only; use mean or sum", op);
  const Device dev = common_device(op, {&pred, &target});
  Tensor losses = Tensor::empty(pred.shape(), dev);
  (dev.is_cuda() ? cuda::pointwise_loss_forward : cpu::pointwise_loss_forward)(kind, beta, pred.data(), target.data(),
                                                                               losses.data(), losses.numel());

  if (any_requires_grad({&pred, &target})) {
    Tensor p_ = pred.detach(), t_ = target.detach();
    record(losses, op, {pred, target}, [kind, beta, p_, t_](const Tensor& g, const std::vector<bool>& needs) {
      Tensor gp = needs[0] ? Tensor::empty(p_.shape(), g.device()) : Tensor();
      Tensor gt = needs[1] ? Tensor::empty(t_.shape(), g.device()) : Tensor();
      (g.is_cuda() ? cuda::pointwise_loss_backward : cpu::pointwise_loss_backward)(
          kind, beta, p_.data(), t_.data(), g.data(), needs[0] ? gp.data() : nullptr, needs[1] ? gt.data() : nullptr,
          g.numel());
      return Grads{gp, gt};
    });
  }
  return reduce_loss(op, losses, reduction);
}

}  // namespace

Tensor l1_loss(const Tensor& pred, const Tensor& target, Reduction reduction) {
  MSMIX_OP_RANGE("l1_loss");
  return pointwise_loss(PointwiseLoss::L1, "l1_loss", "pred", pred, target, 0, reduction);
}

Tensor mse_loss(const Tensor& pred, const Tensor& target, Reduction reduction) {
  MSMIX_OP_RANGE("mse_loss");
  return pointwise_loss(PointwiseLoss::Mse, "mse_loss", "pred", pred, target, 0, reduction);
}

Tensor smooth_l1_loss(const Tensor& pred, const Tensor& target, float beta, Reduction reduction) {
  MSMIX_OP_RANGE("smooth_l1_loss");
  MSMIX_CHECK(beta >= 0, "smooth_l1_loss: beta must be >= 0, got {}", beta);  // beta 0 is l1_loss, as PyTorch
  return pointwise_loss(PointwiseLoss::SmoothL1, "smooth_l1_loss", "pred", pred, target, beta, reduction);
}

Tensor kl_div(const Tensor& input, const Tensor& target, Reduction reduction) {
  MSMIX_OP_RANGE("kl_div");
  return pointwise_loss(PointwiseLoss::KlDiv, "kl_div", "input", input, target, 0, reduction);
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction) {
  MSMIX_OP_RANGE("cross_entropy");
  MSMIX_CHECK(logits.defined() && target.defined(), "cross_entropy: undefined input");
  MSMIX_CHECK(logits.dim() == 2, "cross_entropy: expected logits [N, C], got {}", describe(logits));
  const int64_t N = logits.size(0), C = logits.size(1);
  MSMIX_CHECK(C > 0, "cross_entropy: logits {} have no classes", describe(logits));
  MSMIX_CHECK(target.shape() == Shape{N}, "cross_entropy: target {} must be [{}] class indices for logits {}",
              describe(target), N, describe(logits));
  MSMIX_CHECK(reduction != Reduction::BatchMean, "cross_entropy: reduction {} is for kl_div only; use mean or sum",
              reduction_name(reduction));
  const Device dev = common_device("cross_entropy", {&logits, &target});

  // losses [N] per row; lse [N] = log sum exp of each row, saved so backward rebuilds softmax in one pass.
  Tensor losses = Tensor::empty({N}, dev), lse = Tensor::empty({N}, dev);
  {
    // A device target is read back for the check (one small copy that synchronises): kernels see valid classes.
    const Tensor host_target = dev.is_cuda() ? target.detach().to(Device::cpu()) : target;
    const int64_t bad = cpu::cross_entropy_bad_target(host_target.data(), N, C);
    MSMIX_CHECK(bad < 0, "cross_entropy: target[{}] = {} is not a class index in [0, {}) for logits {}", bad,
                bad < 0 ? 0.0f : host_target.data()[bad], C, describe(logits));
    (dev.is_cuda() ? cuda::cross_entropy_forward : cpu::cross_entropy_forward)(logits.data(), target.data(),
                                                                               losses.data(), lse.data(), N, C);
  }

  // Class indices have no grad: only logits are recorded.
  if (any_requires_grad({&logits})) {
    Tensor x_ = logits.detach(), t_ = target.detach();
    record(losses, "cross_entropy", {logits}, [x_, t_, lse, N, C](const Tensor& g, const std::vector<bool>&) {
      Tensor gx = Tensor::empty(x_.shape(), g.device());
      (g.is_cuda() ? cuda::cross_entropy_backward : cpu::cross_entropy_backward)(x_.data(), t_.data(), lse.data(),
                                                                                 g.data(), gx.data(), N, C);
      return Grads{gx};
    });
  }
  return reduce_loss("cross_entropy", losses, reduction);
}

}  // namespace msmix
