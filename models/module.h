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

 protected:
  // Registers a leaf that requires grad; returns the handle to keep as a member.
  Tensor register_parameter(const std::string& name, Tensor value, bool requires_grad = true);
  Tensor register_buffer(const std::string& name, Tensor value);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    check_name(name);
    children_.emplace_back(name, module);
    return module;
  }
  bool training_ = true;

 private:
  void check_name(const std::string& name) const;
  void collect(const std::string& prefix, bool parameters, NamedTensors& out) const;
  NamedTensors params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

}  // namespace msmix
