// Module: a tree of named parameters, buffers and child modules with PyTorch's dotted names
// (`text_subnet.rnn.weight_ih_l0`), so a state dict maps one-to-one onto an MMSA/PyTorch state_dict.
// Members hold Tensor handles that share their impl with the registry: an optimizer updating
// named_parameters() in place updates the member the forward pass reads.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/profile.h"  // each module's forward opens a range named range_name()
#include "engine/tensor.h"

namespace msmix {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  virtual ~Module() = default;

  NamedTensors named_parameters() const;  // registration order, children after own, dotted names
  std::vector<Tensor> parameters() const;
  NamedTensors named_buffers() const;
  std::map<std::string, Tensor> state_dict() const;  // parameters and buffers
  // Copies values in. strict: every name must be present both ways. Any missing, unexpected or
  // mis-shaped name is reported together in one error.
  void load_state_dict(const std::map<std::string, Tensor>& state, bool strict = true);
  int64_t num_parameters(bool trainable_only = true) const;

  void train(bool on = true);  // recursive
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();
  void to(Device device);  // moves every parameter and buffer in place (handles stay valid)

  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }

  // What the module is ("Linear", "LSTM", ...), its dotted path from the root it is registered under
  // ("text_subnet.rnn"; "" for a root), and the name of the profiling range its forward opens
  // ("text_subnet.rnn (LSTM)"; a root's: its kind). Paths are the state dict's prefixes.
  virtual const char* kind() const { return "Module"; }
  const std::string& path() const { return path_; }
  const char* range_name() const { return path_.empty() ? kind() : range_name_.c_str(); }

 protected:
  // Registers a leaf that requires grad; returns the handle to keep as a member.
  Tensor register_parameter(const std::string& name, Tensor value, bool requires_grad = true);
  Tensor register_buffer(const std::string& name, Tensor value);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    check_name(name);
    children_.emplace_back(name, module);
    module->prefix_path(path_.empty() ? name : path_ + "." + name);  // also when this module is registered already
    return module;
  }
  bool training_ = true;

 private:
  void check_name(const std::string& name) const;
  void collect(const std::string& prefix, bool parameters, NamedTensors& out) const;
  void prefix_path(const std::string& parent);  // this subtree now sits under `parent` (a dotted path)
  NamedTensors params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  std::string path_, range_name_;
};

}  // namespace msmix
