#include "models/lmf.h"

#include <cmath>

#include "engine/error.h"
#include "models/init.h"
#include "ops/ops.h"

namespace msmix {

namespace {

// torch.nn.init.xavier_normal_: N(0, std^2), std = sqrt(2 / (fan_in + fan_out)), PyTorch's fans
// (a factor [r, d, 1] has fan_in d, fan_out r).
Tensor xavier_normal(const Shape& shape) {
  Tensor t = Tensor::empty(shape);
  auto [fan_in, fan_out] = init::fan_in_and_fan_out(t);
  init::normal_(t, 0.0f, std::sqrt(2.0f / float(fan_in + fan_out)));
  return t;
}

}  // namespace

LMF::LMF(const FeatureDims& dims_, const Config& config) : dims(dims_) {
  std::vector<int64_t> hidden = config_ints(config, "hidden_dims", 3);
  std::vector<float> dropouts = config_floats(config, "dropouts", 4);
  text_hidden = hidden[0], audio_hidden = hidden[1], video_hidden = hidden[2];
  text_out = text_hidden / 2;
  rank = config_int(config, "rank");
  MSMIX_CHECK(rank > 0 && text_out > 0, "lmf: rank and text hidden / 2 must be positive, got rank {} text hidden {}",
              rank, text_hidden);
  // The fusion parameters first, as MMSA's parameters() lists them (its optimizer slices by position).
  audio_factor = register_parameter("audio_factor", xavier_normal({rank, audio_hidden + 1, 1}));
  video_factor = register_parameter("video_factor", xavier_normal({rank, video_hidden + 1, 1}));
  text_factor = register_parameter("text_factor", xavier_normal({rank, text_out + 1, 1}));
  fusion_weights = register_parameter("fusion_weights", xavier_normal({1, rank}));
  fusion_bias = register_parameter("fusion_bias", Tensor::zeros({1, 1}));
  audio_subnet = register_module("audio_subnet", std::make_shared<SubNet>(dims.audio, audio_hidden, dropouts[0]));
  video_subnet = register_module("video_subnet", std::make_shared<SubNet>(dims.vision, video_hidden, dropouts[1]));
  text_subnet = register_module("text_subnet",
                                std::make_shared<TextSubNet>(dims.text, text_hidden, text_out, dropouts[2]));
  post_fusion_dropout = register_module("post_fusion_dropout", std::make_shared<Dropout>(dropouts[3]));
}

Representations LMF::encode(const ModelInput& input) {
  Representations r;
  r.a = prepend_one(audio_subnet->forward(single_step(input.audio, name(), "audio", dims.audio)));
  r.v = prepend_one(video_subnet->forward(single_step(input.vision, name(), "vision", dims.vision)));
  r.t = prepend_one(text_subnet->forward(input.text));
  return r;
}

ModelOutput LMF::fuse(const Representations& reps) {
  check_representation(reps.a, name(), "a", audio_hidden + 1, -1);
  const int64_t B = reps.a.size(0);
  check_representation(reps.v, name(), "v", video_hidden + 1, B);
  check_representation(reps.t, name(), "t", text_out + 1, B);
  // [B, d + 1] @ [r, d + 1, 1] -> [r, B, 1]: the 2-D side is shared across the rank.
  Tensor zy = mul(mul(matmul(reps.a, audio_factor), matmul(reps.v, video_factor)), matmul(reps.t, text_factor));
  Tensor y = matmul(fusion_weights, reshape(zy, {rank, B}));  // [1, r] @ [r, B] -> [1, B]
  return {add(reshape(y, {B, 1}), fusion_bias), Tensor()};
}

std::vector<NamedParamGroup> LMF::parameter_groups(float learning_rate, float factor_lr, float weight_decay,
                                                   bool include_fusion) const {
  NamedParamGroup factors{"factors", {}, factor_lr, weight_decay};
  NamedParamGroup subnets{"subnets", {}, learning_rate, weight_decay};
  NamedParamGroup fusion{"fusion", {}, learning_rate, weight_decay};
  for (const auto& [name, p] : named_parameters()) {
    if (!p.requires_grad()) continue;
    if (name == "audio_factor" || name == "video_factor" || name == "text_factor") factors.params.emplace_back(name, p);
    else if (name == "fusion_weights" || name == "fusion_bias") fusion.params.emplace_back(name, p);
    else subnets.params.emplace_back(name, p);
  }
  std::vector<NamedParamGroup> groups = {factors, subnets};
  if (include_fusion) groups.push_back(fusion);
  return groups;
}

}  // namespace msmix
