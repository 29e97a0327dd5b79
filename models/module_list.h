// PyTorch's container naming, so state dicts match name for name:
//   ModuleList<M>: children called 0, 1, 2, ... (e.g. "layers.3.fc1.weight");
//   ModuleGroup: named children of a module that has no code of its own (Hugging Face's BERT nests its
//   linears as "attention.self.query", "attention.output.dense", ...);
//   Sequential: children called by their position in an nn.Sequential, where layers without parameters
//   (GELU, Dropout) leave gaps: nn.Sequential(Linear, GELU, Dropout, Linear) has "net.0.*" and "net.3.*".
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/module.h"

namespace msmix {

template <class M>
class ModuleList : public Module {
 public:
  const char* kind() const override { return "ModuleList"; }
  std::shared_ptr<M> append(std::shared_ptr<M> module) {
    items.push_back(register_module(std::to_string(items.size()), std::move(module)));
    return items.back();
  }
  size_t size() const { return items.size(); }
  const std::shared_ptr<M>& operator[](size_t i) const { return items[i]; }
  std::vector<std::shared_ptr<M>> items;
};

class ModuleGroup : public Module {
 public:
  explicit ModuleGroup(const char* kind) : kind_(kind) {}  // kind: what PyTorch calls the module ("BertAttention")
  const char* kind() const override { return kind_; }
  template <class M>
  std::shared_ptr<M> add(const std::string& name, std::shared_ptr<M> module) {
    return register_module(name, std::move(module));
  }

 private:
  const char* kind_;
};

class Sequential : public ModuleGroup {
 public:
  Sequential() : ModuleGroup("Sequential") {}
  template <class M>
  std::shared_ptr<M> set(int64_t position, std::shared_ptr<M> module) {
    return add(std::to_string(position), std::move(module));
  }
};

}  // namespace msmix
