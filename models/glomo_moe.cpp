#include "models/glomo_moe.h"

#include <limits>

#include "engine/error.h"
#include "ops/ops.h"

namespace msmix {

GlomoExpert::GlomoExpert(int64_t input, int64_t output) {
  fc1 = register_module("fc1", std::make_shared<Linear>(input, output));
  fc2 = register_module("fc2", std::make_shared<Linear>(output, output));
}

Tensor GlomoExpert::forward(const Tensor& x) { return fc2->forward(relu(fc1->forward(x))); }

Tensor squared_coefficient_of_variation(const Tensor& x) {
  if (x.numel() <= 1) return Tensor::scalar(0.0f, x.device());
  Tensor m = mean(x);
  return div(var(x, {0}), add(mul(m, m), 1e-10f));
}

GlomoMoE::GlomoMoE(int64_t input, int64_t output, int64_t num_experts_, int64_t k_, float loss_weight_)
    : num_experts(num_experts_), k(k_), loss_weight(loss_weight_) {
  MSMIX_CHECK(input > 0 && output > 0 && num_experts > 0 && k >= 1 && k <= num_experts,
              "GLoMo MoE: need positive sizes and 1 <= k <= experts, got input {}, output {}, experts {}, k {}", input,
              output, num_experts, k);
  w_gate = register_parameter("w_gate", Tensor::zeros({input, num_experts}));
  w_noise = register_parameter("w_noise", Tensor::zeros({input, num_experts}));
  experts = register_module("experts", std::make_shared<ModuleList<GlomoExpert>>());
  for (int64_t i = 0; i < num_experts; ++i) experts->append(std::make_shared<GlomoExpert>(input, output));
}

GlomoMoE::Output GlomoMoE::forward(const Tensor& x, const Tensor& noise) {
  ProfileRange range(range_name());
  MSMIX_CHECK(x.defined() && x.dim() == 2 && x.size(1) == w_gate.size(0), "GLoMo MoE: expected x [B, {}], got {}",
              w_gate.size(0), x.defined() ? describe(x) : "undefined");
  const int64_t B = x.size(0), E = num_experts;
  const bool noisy = is_training();
  Tensor clean = matmul(x, w_gate);  // [B, E]
  Tensor noise_std, logits = clean;
  if (noisy) {
    noise_std = add(softplus(matmul(x, w_noise)), 0.01f);
    if (noise.defined())
      MSMIX_CHECK(noise.shape() == Shape({B, E}), "GLoMo MoE: noise must be [{}, {}], got {}", B, E, describe(noise));
    logits = add(clean, mul(noise.defined() ? noise : Tensor::randn({B, E}, 0.0f, 1.0f, x.device()), noise_std));
  }
  // The top k of each row (ties to the lower expert), their softmax, 0 elsewhere.
  Tensor ranks = row_ranks(logits.detach());
  auto rank_is = [&](int64_t r) { return eq(ranks, Tensor::full({1}, float(r), x.device())); };
  Tensor in_top = rank_is(0);
  for (int64_t r = 1; r < k; ++r) in_top = add(in_top, rank_is(r));
  const Tensor minus_inf = Tensor::full({1}, -std::numeric_limits<float>::infinity(), x.device());
  Output o;
  o.gates = softmax(where(in_top, logits, minus_inf));  // [B, E]

  Tensor load;
  if (noisy && k < E) {
    // P(expert stays in the top k under new noise): its clean logit against the k-th largest noisy logit of
    // the others, i.e. the (k+1)-th largest when it is in the top k, the k-th when it is not.
    Tensor threshold_in = sum(mul(logits, rank_is(k)), {1}, true),
           threshold_out = sum(mul(logits, rank_is(k - 1)), {1}, true);
    Tensor p_in = normal_cdf(div(sub(clean, threshold_in), noise_std));
    Tensor p_out = normal_cdf(div(sub(clean, threshold_out), noise_std));
    load = sum(where(in_top, p_in, p_out), {0});
  } else {
    load = sum(in_top, {0});
  }
  o.loss = mul(add(squared_coefficient_of_variation(sum(o.gates, {0})), squared_coefficient_of_variation(load)),
               loss_weight);

  std::vector<Tensor> outs;
  for (const auto& expert : experts->items) outs.push_back(unsqueeze(expert->forward(x), 1));  // [B, 1, output]
  Tensor mixture = sum(mul(unsqueeze(o.gates, 2), exp(concat(outs, 1))), {1});                // [B, output]
  const Tensor tiny = Tensor::full({1}, 2.220446049250313e-16f, x.device());
  o.out = log(where(eq(mixture, Tensor::zeros({1}, x.device())), tiny, mixture));
  return o;
}

}  // namespace msmix
