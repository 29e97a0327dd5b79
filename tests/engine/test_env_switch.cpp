// env_switch (engine/env_switch.h): the GPU kernel choices read from the environment (MSMIX_CUDA_LSTM,
// MSMIX_CUDA_SOFTMAX). Unset or empty gives the default, either named value its choice, and anything else an
// error naming the variable, the value and both choices.
#include <cstdlib>

#include "engine/env_switch.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

TEST_CASE("env_switch: the default, both values, and an error for anything else") {
  const char* name = "MSMIX_TEST_ENV_SWITCH";
  unsetenv(name);
  CHECK(!env_switch(name, "passes", "registers"));
  CHECK(env_switch(name, "stepwise", "persistent", true));
  setenv(name, "", 1);
  CHECK(!env_switch(name, "passes", "registers"));
  CHECK(env_switch(name, "stepwise", "persistent", true));
  setenv(name, "registers", 1);
  CHECK(env_switch(name, "passes", "registers"));
  setenv(name, "passes", 1);
  CHECK(!env_switch(name, "passes", "registers", true));
  setenv(name, "Registers", 1);  // a near miss is not taken for either
  check_throws_with([&] { env_switch(name, "passes", "registers"); },
                    {"MSMIX_TEST_ENV_SWITCH=Registers", "expected passes (the default) or registers"});
  check_throws_with([&] { env_switch(name, "stepwise", "persistent", true); },
                    {"expected persistent (the default) or stepwise"});
  unsetenv(name);
}
