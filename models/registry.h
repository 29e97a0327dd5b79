// Backbones by name: the one place the trainer and the command line turn a name and a config (from
// models/defaults.h, with overrides) into a model, its optimizer groups and its task loss.
//
//   Config c = backbone_defaults("tfn", "mosi");
//   auto model = make_backbone("tfn", config_feature_dims(c), c);
//   auto groups = parameter_groups(*model, c);       // -> msmix::ParamGroup in the trainer
//   Tensor loss = task_loss(c, out.prediction, y);   // L1 for the MMSA backbones
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/backbone.h"
#include "models/defaults.h"

namespace msmix {

std::vector<std::string> known_backbones();
// An unknown name is an Error listing the known ones; a missing or mistyped config key names the key.
std::shared_ptr<Backbone> make_backbone(const std::string& name, const FeatureDims& dims, const Config& config);

// The optimizer's parameter groups as MMSA's trainer for this backbone builds them. LMF: see models/lmf.h
// (config keys learning_rate, factor_lr, weight_decay, train_fusion_weights). Every other backbone: one group
// "all" with every parameter that requires grad, lr learning_rate, weight decay weight_decay (0 if absent).
std::vector<NamedParamGroup> parameter_groups(const Backbone& model, const Config& config);

// The backbone's own supervised loss on the regression label: config "loss" = "l1" (MMSA's LF_DNN / TFN /
// LMF / MulT), "mse" (MISA, ALMT) or "smooth_l1"; mean over the batch. Absent: l1. pred and target [B, 1].
Tensor task_loss(const Config& config, const Tensor& pred, const Tensor& target);

}  // namespace msmix
