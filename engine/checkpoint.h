// Checkpoints as safetensors files (Hugging Face's format), so weights move between PyTorch/MMSA and msmix:
//
//     [8 bytes] N, the header length, unsigned little-endian
//     [N bytes] JSON object {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//               "__metadata__": {"key": "value", ...}}   (optional; string values only), padded with spaces
//     [rest]    the data buffer: each tensor's raw little-endian bytes, row-major, at [begin, end) of the buffer
//
// msmix writes float32 only, tensors in name order, packed back to back, the header padded so that the buffer
// starts at a multiple of 8 bytes (as the reference writer does). It reads F32, F64, F16, BF16 and the
// integer/bool dtypes, converting everything to float32 CPU tensors (msmix has one dtype):
//   - F64 rounds to the nearest float32 (overflow to +-inf); F16 and BF16 convert exactly.
//   - Integers are exact in float32 only up to 2^24 = 16777216, so an integer tensor holding a value beyond
//     +-2^24 is refused, except a counter buffer (see is_counter_buffer), which is rounded instead.
// Every file is validated before any tensor is allocated: a hostile or truncated file gives an msmix::Error
// naming the file, the tensor and the problem, and no allocation exceeds the file's size.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace msmix {

using TensorDict = std::map<std::string, Tensor>;            // sorted by name
using TensorList = std::vector<std::pair<std::string, Tensor>>;  // the same type as models' NamedTensors
using Metadata = std::map<std::string, std::string>;

struct Checkpoint {
  TensorDict tensors;                         // float32, CPU, no grad
  Metadata metadata;                          // the header's "__metadata__", empty when absent
  std::map<std::string, std::string> dtypes;  // each tensor's dtype in the file ("F32", "I64", ...)
};

// Writes `tensors` (float32, any device; CUDA tensors are copied to the host) and `metadata` to `path`
// atomically: a temp file in the same folder, fsync, then rename over `path`, so a crash or an error never
// leaves a partial `path`. Throws when the folder is missing or not writable, or a tensor is undefined.
void save_safetensors(const std::string& path, const TensorDict& tensors, const Metadata& metadata = {});
// The same for an ordered list (e.g. Module::named_parameters()); names must be unique; written sorted.
void save_safetensors(const std::string& path, const TensorList& tensors, const Metadata& metadata = {});

// Reads and validates a whole file.
Checkpoint load_safetensors(const std::string& path);

// Is `name` a step counter such as BatchNorm's "bn.num_batches_tracked"? PyTorch stores these as int64;
// they are exempt from the 2^24 exactness check, and module loading keeps the module's own value (with a
// note) when the file lacks them.
bool is_counter_buffer(const std::string& name);

}  // namespace msmix
