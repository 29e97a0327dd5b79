#include "models/lf_dnn.h"

#include "ops/ops.h"

namespace msmix {

LFDNN::LFDNN(const FeatureDims& dims_, const Config& config) : dims(dims_) {
  std::vector<int64_t> hidden = config_ints(config, "hidden_dims", 3);
  std::vector<float> dropouts = config_floats(config, "dropouts", 4);
  text_hidden = hidden[0], audio_hidden = hidden[1], video_hidden = hidden[2];
  text_out = config_int(config, "text_out");
  post_fusion_dim = config_int(config, "post_fusion_dim");
  // Registration order = MMSA's state_dict order.
  audio_subnet = register_module("audio_subnet", std::make_shared<SubNet>(dims.audio, audio_hidden, dropouts[0]));
  video_subnet = register_module("video_subnet", std::make_shared<SubNet>(dims.vision, video_hidden, dropouts[1]));
  text_subnet = register_module("text_subnet",
                                std::make_shared<TextSubNet>(dims.text, text_hidden, text_out, dropouts[2]));
  post_fusion_dropout = register_module("post_fusion_dropout", std::make_shared<Dropout>(dropouts[3]));
  post_fusion_layer_1 = register_module(
      "post_fusion_layer_1", std::make_shared<Linear>(text_out + video_hidden + audio_hidden, post_fusion_dim));
  post_fusion_layer_2 =
      register_module("post_fusion_layer_2", std::make_shared<Linear>(post_fusion_dim, post_fusion_dim));
  post_fusion_layer_3 = register_module("post_fusion_layer_3", std::make_shared<Linear>(post_fusion_dim, 1));
}

Representations LFDNN::encode(const ModelInput& input) {
  Representations r;
  r.a = audio_subnet->forward(single_step(input.audio, name(), "audio", dims.audio));
  r.v = video_subnet->forward(single_step(input.vision, name(), "vision", dims.vision));
  r.t = text_subnet->forward(input.text);
  return r;
}

ModelOutput LFDNN::fuse(const Representations& reps) {
  check_representation(reps.a, name(), "a", audio_hidden, -1);
  const int64_t B = reps.a.size(0);
  check_representation(reps.v, name(), "v", video_hidden, B);
  check_representation(reps.t, name(), "t", text_out, B);
  Tensor h = post_fusion_dropout->forward(concat({reps.a, reps.v, reps.t}, 1));  // [B, a + v + t]
  h = relu(post_fusion_layer_1->forward(h));
  h = relu(post_fusion_layer_2->forward(h));
  return {post_fusion_layer_3->forward(h), Tensor()};
}

}  // namespace msmix
