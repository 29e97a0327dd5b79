// Golden fixtures: tensors written by a PyTorch script (tests/golden/make_*_golden.py) and read back by the
// C++ tests. One JSON file per case, one entry per named tensor:
//     {"x": {"shape": [2, 3], "data": [0.1, ...]}, "out": {"shape": [], "data": [1.5]}, ...}
// data is the tensor flattened row-major, floats written with Python's repr (json.dump of .tolist()), so a
// float32 value round-trips exactly. Names are free-form; the scripts use e.g. "x", "weight", "out",
// "grad.x", "grad.weight" (see each script's docstring).
//
//     golden::Fixture fx = golden::load("basic/linear.json");  // path relative to tests/golden/
//     Tensor x = fx["x"];                                       // a fresh CPU tensor (no grad)
#pragma once
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/tensor.h"

namespace msmix::golden {

struct Fixture {
  std::string file;
  std::map<std::string, Tensor> tensors;

  bool has(const std::string& name) const { return tensors.count(name) != 0; }
  // A fresh copy, so a test may mark it requires_grad or change it without touching the fixture.
  Tensor operator[](const std::string& name) const {
    auto it = tensors.find(name);
    MSMIX_CHECK(it != tensors.end(), "golden: {} has no tensor '{}'", file, name);
    return it->second.clone();
  }
  // Every tensor whose name starts with `prefix`, with the prefix removed: e.g. prefix "param." gives a
  // state dict {"weight": ..., "bias": ...} for Module::load_state_dict.
  std::map<std::string, Tensor> with_prefix(const std::string& prefix) const {
    std::map<std::string, Tensor> out;
    for (const auto& [name, t] : tensors)
      if (name.compare(0, prefix.size(), prefix) == 0) out[name.substr(prefix.size())] = t.clone();
    return out;
  }
};

// Reads tests/golden/<relative_path>. The suite runs from tests/ (make test); a run from the repository
// root is served by the second path.
inline Fixture load(const std::string& relative_path) {
  Fixture fx;
  fx.file = relative_path;
  std::ifstream in("golden/" + relative_path);
  if (!in) in = std::ifstream("tests/golden/" + relative_path);
  MSMIX_CHECK(in.good(), "golden: cannot open golden/{} (run the tests from tests/ or the repository root)",
              relative_path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
    for (auto& [name, v] : j.items()) {
      Shape shape = v.at("shape").get<Shape>();
      std::vector<float> data = v.at("data").get<std::vector<float>>();
      MSMIX_CHECK(int64_t(data.size()) == shape_numel(shape), "golden: {} '{}': {} values for shape {}",
                  relative_path, name, data.size(), shape_str(shape));
      fx.tensors[name] = Tensor::from_vector(data, shape);
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("golden: {}: bad JSON: {}", relative_path, e.what()));
  }
  return fx;
}

}  // namespace msmix::golden
