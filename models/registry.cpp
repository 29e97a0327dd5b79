#include "models/registry.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "engine/error.h"
#include "models/almt.h"
#include "models/glomo.h"
#include "models/lf_dnn.h"
#include "models/lmf.h"
#include "models/misa.h"
#include "models/mult.h"
#include "models/tfn.h"
#include "ops/ops.h"

namespace msmix {

std::vector<std::string> known_backbones() { return {"lf_dnn", "tfn", "lmf", "mult", "misa", "almt", "glomo"}; }

std::shared_ptr<Backbone> make_backbone(const std::string& name, const FeatureDims& dims, const Config& config) {
  MSMIX_CHECK(dims.text > 0 && dims.audio > 0 && dims.vision > 0,
              "make_backbone({}): feature dims must be positive, got text {} audio {} vision {}", name, dims.text,
              dims.audio, dims.vision);
  if (name == "lf_dnn") return std::make_shared<LFDNN>(dims, config);
  if (name == "tfn") return std::make_shared<TFN>(dims, config);
  if (name == "lmf") return std::make_shared<LMF>(dims, config);
  if (name == "mult") return std::make_shared<MULT>(dims, config);
  if (name == "misa") return std::make_shared<MISA>(dims, config);
  if (name == "almt") return std::make_shared<ALMT>(dims, config);
  if (name == "glomo") return std::make_shared<GLoMo>(dims, config);
  throw Error(fmt::format("make_backbone: unknown backbone '{}'; known: {}", name, fmt::join(known_backbones(), ", ")));
}

std::vector<NamedParamGroup> parameter_groups(const Backbone& model, const Config& config) {
  const float lr = config_float(config, "learning_rate");
  const float weight_decay = config_float_or(config, "weight_decay", 0.0f);
  if (const auto* lmf = dynamic_cast<const LMF*>(&model))
    return lmf->parameter_groups(lr, config_float(config, "factor_lr"), weight_decay,
                                 config_bool_or(config, "train_fusion_weights", false));
  if (const auto* glomo = dynamic_cast<const GLoMo*>(&model)) {  // no decay on biases and LayerNorm weights
    NamedParamGroup decay{"decay", {}, lr, weight_decay}, no_decay{"no_decay", {}, lr, 0.0f};
    for (const auto& [name, p] : model.named_parameters())
      if (p.requires_grad()) (glomo->decays(name) ? decay : no_decay).params.emplace_back(name, p);
    return {decay, no_decay};
  }
  NamedParamGroup all{"all", {}, lr, weight_decay};
  for (const auto& [name, p] : model.named_parameters())
    if (p.requires_grad()) all.params.emplace_back(name, p);
  return {all};
}

Tensor task_loss(const Config& config, const Tensor& pred, const Tensor& target) {
  const std::string loss = config.is_object() && config.contains("loss") ? config_string(config, "loss") : "l1";
  if (loss == "l1") return l1_loss(pred, target);
  if (loss == "mse") return mse_loss(pred, target);
  if (loss == "smooth_l1") return smooth_l1_loss(pred, target);
  throw Error(fmt::format("task_loss: unknown loss '{}'; known: l1, mse, smooth_l1", loss));
}

}  // namespace msmix
