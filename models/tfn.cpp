#include "models/tfn.h"

#include "ops/ops.h"

namespace msmix {

TFN::TFN(const FeatureDims& dims_, const Config& config) : dims(dims_) {
  std::vector<int64_t> hidden = config_ints(config, "hidden_dims", 3);
  std::vector<float> dropouts = config_floats(config, "dropouts", 4);
  text_hidden = hidden[0], audio_hidden = hidden[1], video_hidden = hidden[2];
  text_out = config_int(config, "text_out");
  post_fusion_dim = config_int(config, "post_fusion_dim");
  output_range = register_parameter("output_range", Tensor::full({1}, 6.0f), /*requires_grad=*/false);
  output_shift = register_parameter("output_shift", Tensor::full({1}, -3.0f), /*requires_grad=*/false);
  audio_subnet = register_module("audio_subnet", std::make_shared<SubNet>(dims.audio, audio_hidden, dropouts[0]));
  video_subnet = register_module("video_subnet", std::make_shared<SubNet>(dims.vision, video_hidden, dropouts[1]));
  text_subnet = register_module("text_subnet",
                                std::make_shared<TextSubNet>(dims.text, text_hidden, text_out, dropouts[2]));
  post_fusion_dropout = register_module("post_fusion_dropout", std::make_shared<Dropout>(dropouts[3]));
  const int64_t fused = (text_out + 1) * (video_hidden + 1) * (audio_hidden + 1);
  post_fusion_layer_1 = register_module("post_fusion_layer_1", std::make_shared<Linear>(fused, post_fusion_dim));
  post_fusion_layer_2 =
      register_module("post_fusion_layer_2", std::make_shared<Linear>(post_fusion_dim, post_fusion_dim));
  post_fusion_layer_3 = register_module("post_fusion_layer_3", std::make_shared<Linear>(post_fusion_dim, 1));
}

Representations TFN::encode(const ModelInput& input) {
  Representations r;
  r.a = prepend_one(audio_subnet->forward(single_step(input.audio, name(), "audio", dims.audio)));
  r.v = prepend_one(video_subnet->forward(single_step(input.vision, name(), "vision", dims.vision)));
  r.t = prepend_one(text_subnet->forward(input.text));
  return r;
}

ModelOutput TFN::fuse(const Representations& reps) {
  check_representation(reps.a, name(), "a", audio_hidden + 1, -1);
  const int64_t B = reps.a.size(0), A = audio_hidden + 1, V = video_hidden + 1;
  check_representation(reps.v, name(), "v", V, B);
  check_representation(reps.t, name(), "t", text_out + 1, B);
  // Outer products as MMSA's batched matmuls: [B, A, 1] @ [B, 1, V] -> [B, A * V, 1] @ [B, 1, T] -> [B, A * V * T].
  // (A broadcasting mul gives the same forward, but its backward builds two [B, A * V, T] products and sums
  // them down; matmul's backward is two small batched GEMMs reading the grad once each.)
  Tensor av = reshape(matmul(unsqueeze(reps.a, 2), unsqueeze(reps.v, 1)), {B, A * V, 1});
  Tensor fusion = reshape(matmul(av, unsqueeze(reps.t, 1)), {B, -1});
  Tensor h = post_fusion_dropout->forward(fusion);
  h = relu(post_fusion_layer_1->forward(h));
  h = relu(post_fusion_layer_2->forward(h));
  Tensor y = sigmoid(post_fusion_layer_3->forward(h));  // [B, 1]
  return {add(mul(y, output_range), output_shift), Tensor()};
}

}  // namespace msmix
