#include "engine/device.h"

#include "engine/error.h"

namespace msmix {

Device Device::parse(const std::string& name) {
  if (name == "cpu") return cpu();
  if (name == "cuda") return cuda(0);
  if (name.rfind("cuda:", 0) == 0) {
    std::string idx = name.substr(5);
    bool digits = !idx.empty() && idx.size() < 4 && idx.find_first_not_of("0123456789") == std::string::npos;
    MSMIX_CHECK(digits, "device: cannot parse '{}' (expected cpu, cuda or cuda:N)", name);
    return cuda(std::stoi(idx));
  }
  throw Error(fmt::format("device: cannot parse '{}' (expected cpu, cuda or cuda:N)", name));
}

std::string Device::str() const { return is_cpu() ? "cpu" : fmt::format("cuda:{}", index); }

}  // namespace msmix
