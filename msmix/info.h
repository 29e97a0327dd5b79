// `msmix info`: what this build is and what it runs on; with --model and --data, the backbone's parameters.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace msmix {

std::string build_info();  // version, flags, threads, BLAS, CUDA, GPUs: one "key: value" per line
// The GPU kernel choices a CUDA run makes (environment switches, read once): "LSTM persistent
// (MSMIX_CUDA_LSTM), attention composite (MSMIX_CUDA_FUSED_ATTENTION), softmax passes (MSMIX_CUDA_SOFTMAX),
// conv1d im2col (MSMIX_CUDA_CONV)".
std::string gpu_kernel_choices();

// The backbone built as `msmix train` would build it for (model, data, dataset, --set overrides): one row
// per state-dict entry in PyTorch's state_dict order (a module's parameters, its buffers, then its children)
// with the dotted name, shape, element count, kind (trainable, frozen: a parameter that does not require
// grad, buffer) and optimizer group; then the totals, "trainable parameters: 9,497,043" (MMSA's count:
// every parameter that requires grad), and the optimizer groups. Only the data's shapes are needed:
// synthetic data is generated with a handful of samples.
std::string model_info(const std::string& model, const std::string& data, const std::string& dataset = "",
                       const std::vector<std::string>& overrides = {});

// 9497043 -> "9,497,043"
std::string with_commas(int64_t n);

}  // namespace msmix
