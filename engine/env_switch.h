// A kernel choice read from the environment: `name` unset, empty or `off_value` gives false, `on_value` true,
// anything else is an error naming the variable and both values (a typo must not silently run the default).
//   bool persistent = env_switch("MSMIX_CUDA_LSTM", "stepwise", "persistent", true);
#pragma once

namespace msmix {

// default_on: what an unset or empty variable means.
bool env_switch(const char* name, const char* off_value, const char* on_value, bool default_on = false);

}  // namespace msmix
