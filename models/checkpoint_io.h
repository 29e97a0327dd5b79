// Modules to and from safetensors files (engine/checkpoint.h), by PyTorch's dotted state-dict names:
//
//     save_module(model, "run/best.safetensors", {{"epoch", "12"}});
//     LoadReport r = load_into(model, "mmsa_tfn.safetensors");  // strict: names must match both ways
//     for (auto& note : r.notes) fmt::print("{}\n", note);
//
// Integer buffers such as BatchNorm's num_batches_tracked (int64 in PyTorch files) load converted to
// float32; when the file lacks one (older PyTorch) the module keeps its own value and a note says so.
#pragma once
#include <string>
#include <vector>

#include "engine/checkpoint.h"
#include "models/module.h"

namespace msmix {

struct LoadReport {
  std::vector<std::string> loaded;      // names copied into the module
  std::vector<std::string> missing;     // in the module, not in the file (strict=false only)
  std::vector<std::string> unexpected;  // in the file, not in the module (strict=false only)
  std::vector<std::string> notes;       // one human-readable line per thing worth knowing
};

// Copies `state` into `module`. strict: every module name must be in `state` and nothing else, except
// counter buffers (is_counter_buffer), whose absence gives a note. A shape mismatch is an error either way.
// The error lists every missing, unexpected and mis-shaped name at once and names `source`.
LoadReport load_state_into(Module& module, const TensorDict& state, bool strict = true,
                           const std::string& source = "state dict");
// Reads a safetensors file and loads it as above; integer tensors that were converted get a note.
LoadReport load_into(Module& module, const std::string& path, bool strict = true);
// Writes module.state_dict() (parameters and buffers) atomically.
void save_module(const Module& module, const std::string& path, const Metadata& metadata = {});

}  // namespace msmix
