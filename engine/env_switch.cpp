#include "engine/env_switch.h"

#include <cstdlib>
#include <cstring>

#include "engine/error.h"

namespace msmix {

bool env_switch(const char* name, const char* off_value, const char* on_value, bool default_on) {
  const char* v = std::getenv(name);
  if (!v || !*v) return default_on;
  if (std::strcmp(v, on_value) == 0) return true;
  if (std::strcmp(v, off_value) == 0) return false;
  const char* first = default_on ? on_value : off_value;
  const char* second = default_on ? off_value : on_value;
  throw Error(fmt::format("{}={}: expected {} (the default) or {}", name, v, first, second));
}

}  // namespace msmix
