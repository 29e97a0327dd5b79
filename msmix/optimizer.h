// Optimizers with PyTorch 1.13's exact update rules: SGD (momentum, dampening, Nesterov), Adam (L2 weight
// decay added to the grad) and AdamW (decoupled weight decay). An optimizer holds parameter groups, each with
// its own lr and weight decay (e.g. a small lr for a pretrained text encoder, a larger one for the head).
//
//   AdamOptions o;
//   o.lr = 1e-3f;
//   Adam opt({{encoder.parameters(), 1e-5f}, {head.parameters()}}, o);  // the head gets o.lr
//   loss.backward(); opt.step(); opt.zero_grad();
//
// step() updates each parameter's data in place from its grad, skipping parameters with no grad or that do
// not require grad (as PyTorch). Per-parameter state (step count, momentum buffer, Adam moments) is created
// at a parameter's first update and exported by state_dict() for checkpoints.
//
// The arithmetic of one parameter's update is a plain function of float arrays and scalars (ops/cpu/optimizer.h:
// cpu::sgd_update, cpu::adam_update), one fused pass over the elements; cuda::sgd_update / adam_update are
// their twins, so a model on the GPU is updated with the same float operations in the same order. On the GPU
// Adam updates all its tensors in one launch (cuda::adam_update_many), with the same per-element arithmetic.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "ops/cpu/optimizer.h"

namespace msmix {

// What the caller passes. An unset lr / weight_decay takes the optimizer's default.
struct ParamGroup {
  std::vector<Tensor> params;
  std::optional<float> lr = std::nullopt;
  std::optional<float> weight_decay = std::nullopt;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  void step();       // one update of every parameter that has a grad
  void zero_grad();  // drops every parameter's grad (PyTorch's set_to_none)

  // Groups as resolved at construction: lr and weight_decay are always set.
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  size_t num_groups() const { return groups_.size(); }
  float lr(size_t group) const;
  void set_lr(size_t group, float lr);  // what the LR schedulers call
  const char* name() const { return name_; }

  // Checkpoint state: "state.<i>.step" (rank-0, exact up to 2^24 steps), "state.<i>.<buffer>" for each
  // parameter i (counted over all groups in order, as PyTorch's state_dict) that has been updated, and
  // "param_groups.<g>.lr" / ".weight_decay". load_state_dict replaces the whole state; it reports every
  // unknown, missing or mis-shaped name in one error.
  std::map<std::string, Tensor> state_dict() const;
  void load_state_dict(const std::map<std::string, Tensor>& state);

 protected:
  struct ParamState {
    int64_t step = 0;  // updates of this parameter so far
    std::map<std::string, Tensor> buffers;
  };
  Optimizer(const char* name, std::vector<ParamGroup> groups, float default_lr, float default_weight_decay);
  // Updates one parameter (data in place) from `grad`. state.step was already incremented, and the buffers
  // named by buffer_names() exist (created zero-filled at the parameter's first update).
  virtual void update(const ParamGroup& group, Tensor& param, const Tensor& grad, ParamState& state) = 0;
  virtual std::vector<std::string> buffer_names() const = 0;
  // All the updates of one step() (each as update() would get it); the default calls update() on each in
  // order. Adam overrides it to update every GPU tensor in one launch.
  struct Update {
    const ParamGroup* group;
    Tensor param, grad;
    ParamState* state;
  };
  virtual void update_all(const std::vector<Update>& updates);

 private:
  const char* name_;
  std::vector<ParamGroup> groups_;
  std::vector<ParamState> states_;  // one per parameter, over all groups in order
};

// ---- SGD: with momentum m, dampening d, weight decay wd:
//   g += wd * p;  buf = g at the first step, else buf = m * buf + (1 - d) * g;
//   g = nesterov ? g + m * buf : buf;  p -= lr * g
struct SGDOptions {
  float lr = 1e-3f;  // PyTorch has no default; pass one
  float momentum = 0;
  float dampening = 0;
  float weight_decay = 0;
  bool nesterov = false;  // needs momentum > 0 and dampening == 0
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, SGDOptions options);
  SGD(std::vector<Tensor> params, SGDOptions options) : SGD({ParamGroup{std::move(params)}}, options) {}
  const SGDOptions& options() const { return options_; }

 protected:
  void update(const ParamGroup& group, Tensor& param, const Tensor& grad, ParamState& state) override;
  std::vector<std::string> buffer_names() const override;

 private:
  SGDOptions options_;
};

// ---- Adam / AdamW. With t the parameter's step count:
//   Adam:  g += wd * p            AdamW: p *= 1 - lr * wd
//   m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * g * g
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// Betas are double so the bias corrections equal PyTorch's (computed from Python floats).
struct AdamOptions {
  float lr = 1e-3f;
  double beta1 = 0.9, beta2 = 0.999;
  float eps = 1e-8f;
  float weight_decay = 0;  // AdamW's default is 0.01: AdamW fills it in when left unset
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<ParamGroup> groups, AdamOptions options = {});
  Adam(std::vector<Tensor> params, AdamOptions options = {}) : Adam({ParamGroup{std::move(params)}}, options) {}
  const AdamOptions& options() const { return options_; }

 protected:
  Adam(const char* name, std::vector<ParamGroup> groups, AdamOptions options, bool decoupled);
  void update(const ParamGroup& group, Tensor& param, const Tensor& grad, ParamState& state) override;
  void update_all(const std::vector<Update>& updates) override;
  std::vector<std::string> buffer_names() const override { return {"exp_avg", "exp_avg_sq"}; }

 private:
  cpu::AdamTensor arrays(const ParamGroup& group, const Tensor& param, const Tensor& grad, ParamState& state) const;

  AdamOptions options_;
  bool decoupled_;  // AdamW
};

class AdamW : public Adam {
 public:
  static AdamOptions defaults() {
    AdamOptions o;
    o.weight_decay = 0.01f;
    return o;
  }
  AdamW(std::vector<ParamGroup> groups, AdamOptions options = defaults())
      : Adam("AdamW", std::move(groups), options, true) {}
  AdamW(std::vector<Tensor> params, AdamOptions options = defaults())
      : AdamW({ParamGroup{std::move(params)}}, options) {}
};

}  // namespace msmix
