#include "msmix/optimizer.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/profile.h"
#include "ops/cuda/kernels.h"

namespace msmix {

// ---------------------------------------------------------------- Optimizer

Optimizer::Optimizer(const char* name, std::vector<ParamGroup> groups, float default_lr, float default_weight_decay)
    : name_(name), groups_(std::move(groups)) {
  std::unordered_set<const TensorImpl*> seen;
  for (size_t g = 0; g < groups_.size(); ++g) {
    ParamGroup& group = groups_[g];
    if (!group.lr) group.lr = default_lr;
    if (!group.weight_decay) group.weight_decay = default_weight_decay;
    MSMIX_CHECK(*group.lr >= 0, "{}: invalid learning rate {} in group {}", name_, *group.lr, g);
    MSMIX_CHECK(*group.weight_decay >= 0, "{}: invalid weight_decay {} in group {}", name_, *group.weight_decay, g);
    for (const Tensor& p : group.params) {
      MSMIX_CHECK(p.defined(), "{}: undefined tensor in parameter group {}", name_, g);
      MSMIX_CHECK(p.is_leaf(), "{}: cannot optimize a non-leaf tensor {} (group {})", name_, describe(p), g);
      MSMIX_CHECK(seen.insert(p.impl()).second, "{}: a parameter {} appears more than once (group {})", name_,
                  describe(p), g);
    }
  }
  MSMIX_CHECK(!seen.empty(), "{}: got an empty parameter list", name_);
  states_.resize(seen.size());
}

float Optimizer::lr(size_t group) const {
  MSMIX_CHECK(group < groups_.size(), "{}: no parameter group {} (there are {})", name_, group, groups_.size());
  return *groups_[group].lr;
}

void Optimizer::set_lr(size_t group, float lr) {
  MSMIX_CHECK(group < groups_.size(), "{}: no parameter group {} (there are {})", name_, group, groups_.size());
  MSMIX_CHECK(lr >= 0, "{}: invalid learning rate {} for group {}", name_, lr, group);
  groups_[group].lr = lr;
}

void Optimizer::step() {
  NoGradGuard no_grad;
  ProfileRange range("optimizer step");
  size_t i = 0;
  std::vector<Update> updates;
  for (const ParamGroup& group : groups_) {
    for (Tensor param : group.params) {
      ParamState& state = states_[i++];
      Tensor grad = param.grad();
      if (!param.requires_grad() || !grad.defined()) continue;
      MSMIX_CHECK(grad.shape() == param.shape() && grad.device() == param.device(),
                  "{}.step: grad {} does not match parameter {}", name_, describe(grad), describe(param));
      for (const std::string& name : buffer_names()) {
        Tensor& buf = state.buffers[name];
        if (!buf.defined()) buf = Tensor::zeros(param.shape(), param.device());
        else if (buf.device() != param.device()) buf = buf.to(param.device());  // the module moved
      }
      state.step++;
      updates.push_back({&group, param, grad, &state});
    }
  }
  update_all(updates);
}

void Optimizer::update_all(const std::vector<Update>& updates) {
  for (const Update& u : updates) {
    Tensor param = u.param;
    update(*u.group, param, u.grad, *u.state);
  }
}

void Optimizer::zero_grad() {
  for (const ParamGroup& group : groups_)
    for (Tensor param : group.params) param.zero_grad();
}

std::map<std::string, Tensor> Optimizer::state_dict() const {
  std::map<std::string, Tensor> out;
  for (size_t g = 0; g < groups_.size(); ++g) {
    out[fmt::format("param_groups.{}.lr", g)] = Tensor::scalar(*groups_[g].lr);
    out[fmt::format("param_groups.{}.weight_decay", g)] = Tensor::scalar(*groups_[g].weight_decay);
  }
  for (size_t i = 0; i < states_.size(); ++i) {
    if (states_[i].step == 0) continue;  // never updated: no state, as PyTorch
    out[fmt::format("state.{}.step", i)] = Tensor::scalar(float(states_[i].step));
    for (const auto& [name, buf] : states_[i].buffers) out[fmt::format("state.{}.{}", i, name)] = buf;
  }
  return out;
}

namespace {

// "12.exp_avg" -> (12, "exp_avg"); false when the text before the first dot is not a number.
bool split_index(const std::string& rest, size_t& index, std::string& field) {
  size_t dot = rest.find('.');
  if (dot == 0 || dot == std::string::npos || dot > 9) return false;
  for (size_t k = 0; k < dot; ++k)
    if (rest[k] < '0' || rest[k] > '9') return false;
  index = std::stoul(rest.substr(0, dot));
  field = rest.substr(dot + 1);
  return true;
}

bool starts_with(const std::string& s, const char* prefix, std::string& rest) {
  size_t n = std::char_traits<char>::length(prefix);
  if (s.compare(0, n, prefix) != 0) return false;
  rest = s.substr(n);
  return true;
}

}  // namespace

void Optimizer::load_state_dict(const std::map<std::string, Tensor>& state) {
  std::vector<const Tensor*> params;
  for (const ParamGroup& group : groups_)
    for (const Tensor& p : group.params) params.push_back(&p);
  std::vector<ParamGroup> groups = groups_;
  std::vector<ParamState> states(states_.size());
  std::vector<bool> has_step(states.size(), false);
  std::vector<std::string> problems;
  const std::vector<std::string> buffers = buffer_names();
  NoGradGuard no_grad;

  for (const auto& [key, t] : state) {
    std::string rest, field;
    size_t index = 0;
    if (starts_with(key, "state.", rest) && split_index(rest, index, field)) {
      if (index >= params.size()) {
        problems.push_back(fmt::format("{}: no parameter {} (there are {})", key, index, params.size()));
      } else if (field == "step") {
        if (t.numel() != 1) problems.push_back(fmt::format("{}: expected one element, got {}", key, describe(t)));
        else states[index].step = std::llround(double(t.item())), has_step[index] = true;
      } else if (std::find(buffers.begin(), buffers.end(), field) != buffers.end()) {
        const Tensor& p = *params[index];
        if (t.shape() != p.shape()) {
          problems.push_back(fmt::format("{}: shape {} does not match parameter {}", key, shape_str(t.shape()),
                                         describe(p)));
        } else {
          Tensor copy = Tensor::empty(p.shape(), p.device());  // never alias the caller's tensor
          copy.copy_(t);
          states[index].buffers[field] = copy;
        }
      } else {
        problems.push_back(fmt::format("{}: unexpected (a {} state holds step and {})", key, name_,
                                       fmt::join(buffers, ", ")));
      }
    } else if (starts_with(key, "param_groups.", rest) && split_index(rest, index, field) &&
               (field == "lr" || field == "weight_decay")) {
      if (index >= groups.size()) {
        problems.push_back(fmt::format("{}: no parameter group {} (there are {})", key, index, groups.size()));
      } else if (t.numel() != 1 || !(t.item() >= 0)) {
        problems.push_back(fmt::format("{}: expected one value >= 0, got {}", key, t.str()));
      } else {
        (field == "lr" ? groups[index].lr : groups[index].weight_decay) = t.item();
      }
    } else {
      problems.push_back(fmt::format("{}: unexpected", key));
    }
  }
  for (size_t i = 0; i < states.size(); ++i) {
    bool any = has_step[i] || !states[i].buffers.empty();
    if (!any) continue;
    if (!has_step[i]) problems.push_back(fmt::format("state.{}.step: missing", i));
    for (const std::string& name : buffers)
      if (!states[i].buffers.count(name)) problems.push_back(fmt::format("state.{}.{}: missing", i, name));
  }
  MSMIX_CHECK(problems.empty(), "{}.load_state_dict: {}", name_, fmt::join(problems, "; "));
  groups_ = std::move(groups);
  states_ = std::move(states);
}

// ---------------------------------------------------------------- SGD

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions options)
    : Optimizer("SGD", std::move(groups), options.lr, options.weight_decay), options_(options) {
  MSMIX_CHECK(options.momentum >= 0, "SGD: invalid momentum {}", options.momentum);
  MSMIX_CHECK(!options.nesterov || (options.momentum > 0 && options.dampening == 0),
              "SGD: Nesterov momentum needs momentum > 0 and dampening 0 (got momentum {}, dampening {})",
              options.momentum, options.dampening);
}

std::vector<std::string> SGD::buffer_names() const {
  if (options_.momentum == 0) return {};
  return {"momentum_buffer"};
}

void SGD::update(const ParamGroup& group, Tensor& param, const Tensor& grad, ParamState& state) {
  cpu::SGDScalars s;
  s.lr = *group.lr;
  s.momentum = options_.momentum;
  s.one_minus_dampening = float(1.0 - double(options_.dampening));
  s.weight_decay = *group.weight_decay;
  s.nesterov = options_.nesterov;
  s.first_step = state.step == 1;
  float* buf = options_.momentum != 0 ? state.buffers.at("momentum_buffer").data() : nullptr;
  if (param.is_cuda()) cuda::sgd_update(param.data(), grad.data(), buf, param.numel(), s);
  else cpu::sgd_update(param.data(), grad.data(), buf, param.numel(), s);
}

// ---------------------------------------------------------------- Adam, AdamW

Adam::Adam(std::vector<ParamGroup> groups, AdamOptions options) : Adam("Adam", std::move(groups), options, false) {}

Adam::Adam(const char* name, std::vector<ParamGroup> groups, AdamOptions options, bool decoupled)
    : Optimizer(name, std::move(groups), options.lr, options.weight_decay), options_(options), decoupled_(decoupled) {
  MSMIX_CHECK(options.beta1 >= 0 && options.beta1 < 1 && options.beta2 >= 0 && options.beta2 < 1,
              "{}: invalid betas ({}, {}); each must be in [0, 1)", name, options.beta1, options.beta2);
  MSMIX_CHECK(options.eps >= 0, "{}: invalid eps {}", name, options.eps);
}

cpu::AdamTensor Adam::arrays(const ParamGroup& group, const Tensor& param, const Tensor& grad,
                             ParamState& state) const {
  // Host scalars in double, as PyTorch computes them from Python floats, then rounded to float once.
  const double lr = *group.lr, wd = *group.weight_decay, t = double(state.step);
  const double b1 = options_.beta1, b2 = options_.beta2;
  cpu::AdamScalars s;
  s.beta1 = float(b1);
  s.one_minus_beta1 = float(1 - b1);
  s.beta2 = float(b2);
  s.one_minus_beta2 = float(1 - b2);
  s.eps = options_.eps;
  s.l2_weight_decay = decoupled_ ? 0.0f : float(wd);
  s.param_scale = decoupled_ ? float(1 - lr * wd) : 1.0f;
  s.step_size = float(lr / (1 - std::pow(b1, t)));
  s.bias_correction2_sqrt = float(std::sqrt(1 - std::pow(b2, t)));
  return {param.data(), grad.data(), state.buffers.at("exp_avg").data(), state.buffers.at("exp_avg_sq").data(),
          param.numel(), s};
}

void Adam::update(const ParamGroup& group, Tensor& param, const Tensor& grad, ParamState& state) {
  update_all({{&group, param, grad, &state}});
}

// The GPU's tensors in one launch (a launch per tensor made the update a good share of a small model's step);
// the CPU's one by one. Each tensor gets the same arithmetic either way.
void Adam::update_all(const std::vector<Update>& updates) {
  std::vector<cpu::AdamTensor> on_gpu;
  for (const Update& u : updates) {
    const cpu::AdamTensor t = arrays(*u.group, u.param, u.grad, *u.state);
    if (u.param.is_cuda()) on_gpu.push_back(t);
    else cpu::adam_update(t.param, t.grad, t.exp_avg, t.exp_avg_sq, t.n, t.s);
  }
  if (!on_gpu.empty()) cuda::adam_update_many(on_gpu);
}

}  // namespace msmix
