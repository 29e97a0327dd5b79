// End to end: LF_DNN and TFN (small dims; the text LSTM through our persistent scan, then cuDNN's where the
// build has it; dropout 0, since the two forwards would draw different stretches of the default generator;
// tests/cuda/test_cuda_dropout.cpp checks the masks) in training mode, forward and backward on the GPU against
// the same weights on the CPU: representations, prediction, every parameter's and input's grad, and the batch
// norms' running stats. ALMT (attention, LayerNorm, GELU; no dropout, no LSTM), MISA (BiLSTMs with lengths, its
// regularisers; no dropout), BERT (padded keys) and GLoMo (in eval: its gates' noise is a draw) the same way.
// Skipped without a GPU.
#include <functional>
#include <map>

#include "models/bert.h"
#include "models/defaults.h"
#include "models/glomo.h"
#include "models/registry.h"
#include "tests/cuda/cuda_testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

// `gpu_net` holds `cpu_net`'s weights on the GPU: encode, fuse and backward through both from the same inputs;
// representations, prediction, input grads and every trainable parameter's grad must agree.
void check_gpu_equals_cpu(Backbone& cpu_net, Backbone& gpu_net, const ModelInput& in_cpu) {
  ModelInput in_gpu;
  in_gpu.text = gpu_leaf(in_cpu.text), in_gpu.audio = gpu_leaf(in_cpu.audio), in_gpu.vision = gpu_leaf(in_cpu.vision);
  in_gpu.audio_lengths = in_cpu.audio_lengths, in_gpu.vision_lengths = in_cpu.vision_lengths;
  Representations zc = cpu_net.encode(in_cpu), zg = gpu_net.encode(in_gpu);
  check_close(zg.t, zc.t, 1e-4, 1e-5, "z.t");
  check_close(zg.a, zc.a, 1e-4, 1e-5, "z.a");
  check_close(zg.v, zc.v, 1e-4, 1e-5, "z.v");
  if (zc.t_fine.defined()) {  // GLoMo's local vectors and its experts' loss
    check_close(zg.t_fine, zc.t_fine, 1e-4, 1e-5, "z.t_fine");
    check_close(zg.a_fine, zc.a_fine, 1e-4, 1e-5, "z.a_fine");
    check_close(zg.v_fine, zc.v_fine, 1e-4, 1e-5, "z.v_fine");
    check_close(zg.aux_loss, zc.aux_loss, 1e-4, 1e-6, "aux_loss");
  }
  ModelOutput oc = cpu_net.fuse(zc), og = gpu_net.fuse(zg);
  const Tensor &pc = oc.prediction, &pg = og.prediction;
  REQUIRE(pg.is_cuda());
  check_close(pg, pc, 1e-4, 1e-5, "prediction");
  if (oc.aux_loss.defined()) check_close(og.aux_loss, oc.aux_loss, 1e-4, 1e-6, "fuse's aux_loss");
  Tensor w = leaf(pc.shape(), 4).detach();
  Tensor lc = sum(mul(pc, w)), lg = sum(mul(pg, w.to(Device::cuda())));
  if (oc.aux_loss.defined()) lc = add(lc, oc.aux_loss), lg = add(lg, og.aux_loss);
  lc.backward();
  lg.backward();
  check_close(in_gpu.text.grad(), in_cpu.text.grad(), 1e-4, 1e-5, "grad.text");
  check_close(in_gpu.audio.grad(), in_cpu.audio.grad(), 1e-4, 1e-5, "grad.audio");
  check_close(in_gpu.vision.grad(), in_cpu.vision.grad(), 1e-4, 1e-5, "grad.vision");
  NamedTensors pcs = cpu_net.named_parameters(), pgs = gpu_net.named_parameters();
  REQUIRE(pcs.size() == pgs.size());
  for (size_t k = 0; k < pcs.size(); ++k) {
    if (!pcs[k].second.requires_grad()) continue;
    CAPTURE(pcs[k].first);
    REQUIRE(pgs[k].second.grad().defined() == pcs[k].second.grad().defined());  // GLoMo's w_noise: neither, in eval
    if (pcs[k].second.grad().defined()) check_close(pgs[k].second.grad(), pcs[k].second.grad(), 1e-4, 1e-5, "grad");
  }
}

struct NetPair {
  std::shared_ptr<Backbone> cpu, gpu;
};

// `model` built from `c` on the CPU (then `init`, when given, edits its weights) and a copy of it on the GPU.
NetPair on_both_devices(const std::string& model, const Config& c, const std::function<void(Backbone&)>& init = {}) {
  NetPair n{make_backbone(model, config_feature_dims(c), c), make_backbone(model, config_feature_dims(c), c)};
  if (init) init(*n.cpu);
  n.gpu->load_state_dict(n.cpu->state_dict());
  n.gpu->to(Device::cuda());
  return n;
}

}  // namespace

TEST_CASE("cuda backbones: LF_DNN and TFN forward and backward on the GPU equal the CPU") {
  MSMIX_REQUIRE_GPU();
  std::vector<std::pair<std::string, cuda::LstmKernel>> runs;
  for (std::string model : {"lf_dnn", "tfn"})  // the text LSTM through our scan, and through cuDNN where built in
    for (cuda::LstmKernel kernel : {cuda::LstmKernel::persistent, cuda::LstmKernel::cudnn})
      if (kernel != cuda::LstmKernel::cudnn || cuda::cudnn_compiled()) runs.emplace_back(model, kernel);
  for (const auto& [model, kernel] : runs) {
    CAPTURE(model);
    CAPTURE(cuda::lstm_kernel_name(kernel));
    LstmKernelScope scope(kernel);
    Config c = backbone_defaults(model, "mosi");
    apply_overrides(c, {"feature_dims=[6,4,5]", "hidden_dims=[6,3,4]", "dropouts=[0,0,0,0]", "text_out=3",
                        "post_fusion_dim=5"});
    auto [cpu_net, gpu_net] = on_both_devices(model, c);
    cpu_net->train(true);
    gpu_net->train(true);

    ModelInput in_cpu;
    in_cpu.text = leaf({4, 7, 6}, 1), in_cpu.audio = leaf({4, 1, 4}, 2), in_cpu.vision = leaf({4, 1, 5}, 3);
    check_gpu_equals_cpu(*cpu_net, *gpu_net, in_cpu);
    std::map<std::string, Tensor> sc = cpu_net->state_dict(), sg = gpu_net->state_dict();
    for (const auto& [name, t] : sc) check_close(sg.at(name), t, 1e-5, 1e-6, "state " + name);
  }
}

TEST_CASE("cuda backbones: ALMT forward and backward on the GPU equal the CPU") {
  MSMIX_REQUIRE_GPU();
  Config c = backbone_defaults("almt", "mosi");
  apply_overrides(c, {"feature_dims=[6,4,5]", "feature_length=[7,9,3]", "dst_feature_dims=16",
                      "dst_feature_hidden_dims=12", "fusion_hidden_d=12", "embedding_depth=[1,2,1]"});
  auto [cpu_net, gpu_net] = on_both_devices("almt", c);
  ModelInput in_cpu;
  in_cpu.text = leaf({3, 7, 6}, 1), in_cpu.audio = leaf({3, 9, 4}, 2), in_cpu.vision = leaf({3, 2, 5}, 3);
  check_gpu_equals_cpu(*cpu_net, *gpu_net, in_cpu);
}

TEST_CASE("cuda backbones: MISA (BiLSTMs over each sample's length, its regularisers) on the GPU equals the CPU") {
  MSMIX_REQUIRE_GPU();
  Config c = backbone_defaults("misa", "mosi");
  apply_overrides(c, {"feature_dims=[6,4,5]", "hidden_size=16", "transformer_ff=24", "dropout=0",
                      "transformer_dropout=0"});
  auto [cpu_net, gpu_net] = on_both_devices("misa", c);
  ModelInput in_cpu;
  in_cpu.text = leaf({5, 3, 6}, 1), in_cpu.audio = leaf({5, 9, 4}, 2), in_cpu.vision = leaf({5, 4, 5}, 3);
  in_cpu.audio_lengths = {9, 1, 4, 7, 2}, in_cpu.vision_lengths = {4, 4, 1, 3, 2};
  check_gpu_equals_cpu(*cpu_net, *gpu_net, in_cpu);
}

TEST_CASE("cuda backbones: BERT's encoder with padded samples on the GPU equals the CPU") {
  MSMIX_REQUIRE_GPU();
  BertSizes s;
  s.vocab = 50, s.hidden = 16, s.layers = 2, s.heads = 4, s.intermediate = 24, s.max_positions = 12, s.dropout = 0;
  manual_seed(5);
  BertModel cpu_net(s), gpu_net(s);
  gpu_net.load_state_dict(cpu_net.state_dict());
  gpu_net.to(Device::cuda());
  Tensor text_bert = Tensor::zeros({3, 3, 9});  // 9, 5 and 1 real tokens, then padding
  float* p = text_bert.data();
  const int64_t lengths[] = {9, 5, 1};
  for (int64_t b = 0; b < 3; ++b)
    for (int64_t t = 0; t < lengths[b]; ++t)
      p[b * 27 + t] = float(1 + (7 * t + 3 * b) % 49), p[b * 27 + 9 + t] = 1, p[b * 27 + 18 + t] = t > 3;
  Tensor yc = cpu_net.forward(text_bert), yg = gpu_net.forward(text_bert.to(Device::cuda()));
  REQUIRE(yg.is_cuda());
  check_close(yg, yc, 1e-4, 1e-5, "hidden states");
  Tensor w = leaf(yc.shape(), 4).detach();
  yc.backward(w);
  yg.backward(w.to(Device::cuda()));
  NamedTensors pcs = cpu_net.named_parameters(), pgs = gpu_net.named_parameters();
  for (size_t k = 0; k < pcs.size(); ++k) {
    CAPTURE(pcs[k].first);
    REQUIRE(pgs[k].second.grad().defined() == pcs[k].second.grad().defined());  // the pooler: neither
    if (pcs[k].second.grad().defined()) check_close(pgs[k].second.grad(), pcs[k].second.grad(), 1e-4, 1e-5, "grad");
  }
}

TEST_CASE("cuda backbones: GLoMo (sinusoidal positions, experts, row ranks, the fusion encoder) equals the CPU") {
  MSMIX_REQUIRE_GPU();
  Config c = backbone_defaults("glomo", "mosi");
  apply_overrides(c, {"feature_dims=[6,4,5]", "d_model=16", "num_heads=4", "encoder_layers=2", "fusion_ff=24"});
  manual_seed(7);
  // The gates start at 0 (all experts tie); give them weights so the top 2 differ by row.
  auto [cpu_net, gpu_net] = on_both_devices("glomo", c, [](Backbone& net) {
    for (auto& [name, p] : net.named_parameters())
      if (name.find("w_gate") != std::string::npos) p.copy_(Tensor::randn(p.shape(), 0.0f, 0.3f));
  });
  cpu_net->eval();
  gpu_net->eval();
  ModelInput in_cpu;
  in_cpu.text = leaf({5, 6, 6}, 1), in_cpu.audio = leaf({5, 6, 4}, 2), in_cpu.vision = leaf({5, 6, 5}, 3);
  check_gpu_equals_cpu(*cpu_net, *gpu_net, in_cpu);
}
