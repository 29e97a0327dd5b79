#include "models/checkpoint_io.h"

#include "engine/error.h"

namespace msmix {
namespace {

// MMSA saves its AMIO wrapper, whose names start with "Model."; DataParallel adds "module.". When the
// file's names are the module's with one extra leading component, say which.
std::string prefix_hint(const std::vector<std::string>& unexpected, const TensorDict& mine) {
  for (const std::string& name : unexpected) {
    size_t dot = name.find('.');
    if (dot != std::string::npos && mine.count(name.substr(dot + 1)))
      return fmt::format(" (the file's names carry an extra prefix '{}': convert with "
                         "scripts/pth_to_safetensors.py --strip-prefix {})",
                         name.substr(0, dot + 1), name.substr(0, dot + 1));
  }
  return "";
}

}  // namespace

LoadReport load_state_into(Module& module, const TensorDict& state, bool strict, const std::string& source) {
  TensorDict mine = module.state_dict();
  LoadReport report;
  std::vector<std::string> misshaped, kept_counters;
  TensorDict found;
  for (const auto& [name, t] : mine) {
    auto it = state.find(name);
    if (it == state.end()) {
      (is_counter_buffer(name) ? kept_counters : report.missing).push_back(name);
    } else if (it->second.shape() != t.shape()) {
      misshaped.push_back(
          fmt::format("{} (module {}, file {})", name, shape_str(t.shape()), shape_str(it->second.shape())));
    } else {
      found[name] = it->second;
      report.loaded.push_back(name);
    }
  }
  for (const auto& [name, t] : state)
    if (!mine.count(name)) report.unexpected.push_back(name);

  bool bad = !misshaped.empty() || (strict && (!report.missing.empty() || !report.unexpected.empty()));
  MSMIX_CHECK(!bad, "load_into: {}: missing [{}], unexpected [{}], mis-shaped [{}]{}", source,
              fmt::join(report.missing, ", "), fmt::join(report.unexpected, ", "), fmt::join(misshaped, ", "),
              prefix_hint(report.unexpected, mine));

  module.load_state_dict(found, /*strict=*/false);  // every name in `found` exists with the right shape
  if (!kept_counters.empty())
    report.notes.push_back(
        fmt::format("not in {}, kept the module's value: {}", source, fmt::join(kept_counters, ", ")));
  if (!report.missing.empty())
    report.notes.push_back(fmt::format("not in {}, left as initialised: {}", source, fmt::join(report.missing, ", ")));
  if (!report.unexpected.empty())
    report.notes.push_back(fmt::format("in {} but not in the module, ignored: {}", source,
                                       fmt::join(report.unexpected, ", ")));
  return report;
}

LoadReport load_into(Module& module, const std::string& path, bool strict) {
  Checkpoint ck = load_safetensors(path);
  LoadReport report = load_state_into(module, ck.tensors, strict, path);
  std::vector<std::string> converted;
  for (const std::string& name : report.loaded)
    if (ck.dtypes[name] != "F32") converted.push_back(fmt::format("{} ({})", name, ck.dtypes[name]));
  if (!converted.empty())
    report.notes.push_back(fmt::format("converted to float32: {}", fmt::join(converted, ", ")));
  return report;
}

void save_module(const Module& module, const std::string& path, const Metadata& metadata) {
  save_safetensors(path, module.state_dict(), metadata);
}

}  // namespace msmix
