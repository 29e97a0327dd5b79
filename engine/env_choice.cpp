#include "engine/env_choice.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "engine/error.h"

namespace msmix {

int env_choice(const char* name, std::initializer_list<const char*> values) {
  MSMIX_CHECK(values.size() > 0, "env_choice({}): no values", name);
  const char* v = std::getenv(name);
  if (!v || !*v) return 0;
  int index = 0;
  std::string expected;
  for (const char* value : values) {
    if (std::strcmp(v, value) == 0) return index;
    expected += index == 0 ? fmt::format("{} (the default)", value)
                           : fmt::format("{}{}", index + 1 == int(values.size()) ? " or " : ", ", value);
    ++index;
  }
  throw Error(fmt::format("{}={}: expected {}", name, v, expected));
}

}  // namespace msmix
