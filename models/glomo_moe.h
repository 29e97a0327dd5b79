// GLoMo's mixture of experts (shared/spec/glomo.md, step 4; the noisy top-k gating of Shazeer et al. 2017, as
// GLoMo's code takes it from the common PyTorch port):
//   gate logits = x W_gate, plus in training N(0, 1) noise times softplus(x W_noise) + 0.01;
//   gates = softmax over each row's top k logits, 0 elsewhere;
//   expert i: E_i(x) = fc2(ReLU(fc1(x)))  (input -> output -> output);
//   out = log(sum_i gate_i exp(E_i(x))), a 0 sum replaced by 2.220446e-16 (double's epsilon) before the log;
//   loss = loss_weight (cv^2(importance) + cv^2(load)): importance = the gates summed over the batch, load =
//     in noisy training the probability of each expert staying in the top k under fresh noise (summed over
//     the batch, through the normal CDF), else how many samples picked it; cv^2 = unbiased variance /
//     (mean^2 + 1e-10), 0 for one expert.
// W_gate and W_noise start at 0 (the port's init): every gate is equal at first, and in eval ties go to the
// lower-numbered experts. All experts run on every row (3 small MLPs; a row's unpicked experts get gate 0 and
// so neither value nor grad), the same numbers as dispatching rows to their experts.
#pragma once
#include <memory>

#include "models/linear.h"
#include "models/module.h"
#include "models/module_list.h"

namespace msmix {

class GlomoExpert : public Module {
 public:
  const char* kind() const override { return "MLP"; }
  GlomoExpert(int64_t input, int64_t output);
  Tensor forward(const Tensor& x);  // fc2(ReLU(fc1(x))): [B, input] -> [B, output]

  std::shared_ptr<Linear> fc1, fc2;
};

class GlomoMoE : public Module {
 public:
  const char* kind() const override { return "MoE"; }
  GlomoMoE(int64_t input, int64_t output, int64_t num_experts, int64_t k, float loss_weight);

  struct Output {
    Tensor out;    // [B, output]
    Tensor loss;   // rank 0, weighted by loss_weight
    Tensor gates;  // [B, experts], for inspection and tests
  };
  // x [B, input]. In training the gate noise N(0, 1) [B, experts] is `noise` when given (tests, twins), else
  // drawn from the default generator by Tensor::randn on x's device (the same Philox numbers on either device;
  // on the GPU a kernel, which a captured CUDA graph step redraws at each replay).
  Output forward(const Tensor& x, const Tensor& noise = Tensor());

  int64_t num_experts, k;
  float loss_weight;
  Tensor w_gate, w_noise;  // [input, experts]
  std::shared_ptr<ModuleList<GlomoExpert>> experts;
};

// cv^2 of a vector: unbiased variance / (mean^2 + 1e-10); 0 for a single entry.
Tensor squared_coefficient_of_variation(const Tensor& x);

}  // namespace msmix
