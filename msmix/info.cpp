#include "msmix/info.h"

#include <cblas.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <omp.h>

#include <map>

#include "engine/blas_kernels.h"
#include "engine/cuda_runtime.h"
#include "engine/error.h"
#include "models/attention.h"
#include "models/registry.h"
#include "msmix/bench_model.h"
#include "msmix/trainer.h"
#include "ops/cuda/kernels.h"

namespace msmix {

std::string build_info() {
  std::string out;
  out += fmt::format("msmix: {} ({})\n", MSMIX_VERSION, MSMIX_GIT_REV);
  out += fmt::format("build: {}, g++ {}\n", MSMIX_BUILD_FLAGS, __VERSION__);
  out += fmt::format("cpu threads: {} (OpenMP)\n", omp_get_max_threads());
  out += fmt::format("blas: {}; kernels {}; {} threads\n", openblas_get_config(), choose_blas_kernels(),
                     openblas_get_num_threads());
  out += fmt::format("cuda: {}\n", cuda::compiled() ? "compiled in, " + cuda::runtime_info() : "not compiled in");
  int gpus = cuda::device_count();
  if (gpus == 0) out += "gpus: none found\n";
  for (int i = 0; i < gpus; ++i) out += fmt::format("gpu {}: {}\n", i, cuda::device_name(i));
  if (cuda::compiled()) {  // the kernel choices a GPU run makes (environment switches, read once)
    out += fmt::format("cudnn: {}\n", cuda::cudnn_version());
    out += "gpu kernels: " + gpu_kernel_choices() + "\n";
  }
  return out;
}

std::string gpu_kernel_choices() {
  return fmt::format("LSTM {} (MSMIX_CUDA_LSTM), attention {} (MSMIX_CUDA_FUSED_ATTENTION), softmax {} "
                     "(MSMIX_CUDA_SOFTMAX), conv1d {} (MSMIX_CUDA_CONV)",
                     cuda::lstm_kernel_name(cuda::lstm_kernel()),
                     cuda_fused_attention_enabled() ? "fused" : "composite",
                     cuda::softmax_rows_in_registers() ? "registers" : "passes",
                     cuda::conv_kernel_name(cuda::conv_kernel()));
}

std::string with_commas(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

namespace {

struct Entry {
  std::string name;
  Tensor tensor;
  bool buffer;
};

// PyTorch's state_dict order: a module's own parameters, its own buffers, then each child in turn. A name
// without a dot belongs to the module itself (Module::named_parameters lists children with dotted names).
void state_dict_order(const Module& m, const std::string& prefix, std::vector<Entry>& out) {
  for (const auto& [name, t] : m.named_parameters())
    if (name.find('.') == std::string::npos) out.push_back({prefix + name, t, false});
  for (const auto& [name, t] : m.named_buffers())
    if (name.find('.') == std::string::npos) out.push_back({prefix + name, t, true});
  for (const auto& [name, child] : m.children()) state_dict_order(*child, prefix + name + ".", out);
}

}  // namespace

std::string model_info(const std::string& model, const std::string& data, const std::string& dataset,
                       const std::vector<std::string>& overrides) {
  RunSpec spec;
  spec.model = model;
  spec.data = data;
  spec.dataset = dataset;
  spec.device = "cpu";
  spec.overrides = overrides;
  Config config = make_run_config(spec);
  Dataset shapes = sized_data(config, 2, 1, 1);
  prepare_data(shapes, config);  // sets feature_dims from the data
  const FeatureDims dims = config_feature_dims(config);
  auto backbone = make_backbone(model, dims, config);

  std::map<const TensorImpl*, std::string> group_of;
  const std::vector<NamedParamGroup> groups = parameter_groups(*backbone, config);
  for (const NamedParamGroup& g : groups)
    for (const auto& [name, t] : g.params) group_of[t.impl()] = g.name;

  std::vector<Entry> entries;
  state_dict_order(*backbone, "", entries);
  size_t name_width = 4, shape_width = 5;
  for (const Entry& e : entries) {
    name_width = std::max(name_width, e.name.size());
    shape_width = std::max(shape_width, shape_str(e.tensor.shape()).size());
  }

  std::string out = fmt::format("{} on {} (dataset {}), feature dims ({}, {}, {})\n", model, data,
                                config_string(config, "dataset"), dims.text, dims.audio, dims.vision);
  out += fmt::format("{:<{}}  {:<{}}  {:>11}  {:<9}  {}\n", "name", name_width, "shape", shape_width, "count",
                     "kind", "optimizer group");
  int64_t trainable = 0, frozen = 0, buffers = 0, frozen_tensors = 0, buffer_tensors = 0;
  std::vector<std::string> untrained;  // require grad, yet no optimizer group holds them (LMF's fusion weights)
  for (const Entry& e : entries) {
    const int64_t n = e.tensor.numel();
    const char* kind = e.buffer ? "buffer" : e.tensor.requires_grad() ? "trainable" : "frozen";
    auto g = group_of.find(e.tensor.impl());
    const std::string group = g != group_of.end() ? g->second : "-";
    if (e.buffer) buffers += n, ++buffer_tensors;
    else if (e.tensor.requires_grad()) trainable += n;
    else frozen += n, ++frozen_tensors;
    if (!e.buffer && e.tensor.requires_grad() && group == "-") untrained.push_back(e.name);
    out += fmt::format("{:<{}}  {:<{}}  {:>11}  {:<9}  {}\n", e.name, name_width, shape_str(e.tensor.shape()),
                       shape_width, with_commas(n), kind, group);
  }
  out += fmt::format("trainable parameters: {}\n", with_commas(trainable));
  if (frozen_tensors > 0)
    out +=
        fmt::format("frozen parameters: {} in {} tensors (do not require grad)\n", with_commas(frozen), frozen_tensors);
  out += fmt::format("buffers: {} values in {} tensors; {} state-dict entries\n", with_commas(buffers),
                     buffer_tensors, entries.size());
  for (const NamedParamGroup& g : groups) {
    int64_t n = 0;
    for (const auto& [name, t] : g.params) n += t.numel();
    out += fmt::format("optimizer group {}: {} parameters in {} tensors, lr {}, weight decay {}\n", g.name,
                       with_commas(n), g.params.size(), g.lr, g.weight_decay);
  }
  if (!untrained.empty())
    out += fmt::format("not optimized (require grad, in no group): {}\n", fmt::join(untrained, ", "));
  return out;
}

}  // namespace msmix
