#include "models/module.h"

#include <set>

#include "engine/autograd.h"
#include "engine/error.h"

namespace msmix {

void Module::check_name(const std::string& name) const {
  MSMIX_CHECK(!name.empty() && name.find('.') == std::string::npos, "module: bad name '{}'", name);
  for (const auto& list : {&params_, &buffers_})
    for (const auto& [n, t] : *list) MSMIX_CHECK(n != name, "module: name '{}' registered twice", name);
  for (const auto& [n, m] : children_) MSMIX_CHECK(n != name, "module: name '{}' registered twice", name);
}

Tensor Module::register_parameter(const std::string& name, Tensor value, bool requires_grad) {
  check_name(name);
  MSMIX_CHECK(value.defined(), "module: parameter '{}' is undefined", name);
  value = value.detach();  // a parameter is a leaf
  value.set_requires_grad(requires_grad);
  params_.emplace_back(name, value);
  return value;
}

Tensor Module::register_buffer(const std::string& name, Tensor value) {
  check_name(name);
  MSMIX_CHECK(value.defined(), "module: buffer '{}' is undefined", name);
  value = value.detach();
  buffers_.emplace_back(name, value);
  return value;
}

void Module::prefix_path(const std::string& parent) {
  path_ = path_.empty() ? parent : parent + "." + path_;
  range_name_ = path_ + " (" + kind() + ")";
  for (const auto& [name, child] : children_) child->prefix_path(parent);
}

void Module::collect(const std::string& prefix, bool parameters, NamedTensors& out) const {
  for (const auto& [name, t] : parameters ? params_ : buffers_) out.emplace_back(prefix + name, t);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", parameters, out);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", true, out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect("", false, out);
  return out;
}

std::map<std::string, Tensor> Module::state_dict() const {
  std::map<std::string, Tensor> out;
  for (auto& [name, t] : named_parameters()) out[name] = t;
  for (auto& [name, t] : named_buffers()) out[name] = t;
  return out;
}

void Module::load_state_dict(const std::map<std::string, Tensor>& state, bool strict) {
  std::map<std::string, Tensor> mine = state_dict();
  std::vector<std::string> missing, unexpected, misshaped;
  for (auto& [name, t] : mine) {
    auto it = state.find(name);
    if (it == state.end()) missing.push_back(name);
    else if (it->second.shape() != t.shape())
      misshaped.push_back(
          fmt::format("{} (expected {}, got {})", name, shape_str(t.shape()), shape_str(it->second.shape())));
  }
  for (auto& [name, t] : state)
    if (!mine.count(name)) unexpected.push_back(name);
  bool bad = !misshaped.empty() || (strict && (!missing.empty() || !unexpected.empty()));
  MSMIX_CHECK(!bad, "load_state_dict: missing [{}], unexpected [{}], mis-shaped [{}]", fmt::join(missing, ", "),
              fmt::join(unexpected, ", "), fmt::join(misshaped, ", "));
  NoGradGuard no_grad;
  for (auto& [name, t] : mine) {
    auto it = state.find(name);
    if (it != state.end()) t.copy_(it->second);
  }
}

int64_t Module::num_parameters(bool trainable_only) const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters())
    if (!trainable_only || t.requires_grad()) n += t.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (auto& [name, t] : named_parameters()) t.zero_grad();
}

void Module::to(Device device) {
  for (const auto& list : {named_parameters(), named_buffers()}) {
    for (auto [name, t] : list) {
      if (t.device() == device) continue;
      Tensor moved = t.detach().to(device);
      t.impl()->storage = moved.impl()->storage;  // same impl: every handle sees the new device
      t.zero_grad();
    }
  }
}

}  // namespace msmix
