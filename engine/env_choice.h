// A kernel choice read from the environment: one of a few named values, the first being the default.
// Unset or empty gives the default; anything that is not one of the names is an error naming the variable and
// every choice (a typo must not silently run the default).
//   int scan = env_choice("MSMIX_CUDA_LSTM", {"persistent", "stepwise", "cudnn"});  // 0, 1 or 2
#pragma once
#include <initializer_list>

namespace msmix {

// The index of the variable's value in `values`; values must not be empty.
int env_choice(const char* name, std::initializer_list<const char*> values);

}  // namespace msmix
