// env_choice (engine/env_choice.h): the GPU kernel choices read from the environment (MSMIX_CUDA_LSTM,
// MSMIX_CUDA_SOFTMAX). Unset or empty gives the first value, each named value its index, and anything else an
// error naming the variable, the value and every choice.
#include <cstdlib>

#include "engine/env_choice.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

TEST_CASE("env_choice: the default, each value, and an error for anything else") {
  const char* name = "MSMIX_TEST_ENV_CHOICE";
  unsetenv(name);
  CHECK(env_choice(name, {"passes", "registers"}) == 0);
  CHECK(env_choice(name, {"persistent", "stepwise", "cudnn"}) == 0);
  setenv(name, "", 1);
  CHECK(env_choice(name, {"passes", "registers"}) == 0);
  setenv(name, "registers", 1);
  CHECK(env_choice(name, {"passes", "registers"}) == 1);
  setenv(name, "cudnn", 1);
  CHECK(env_choice(name, {"persistent", "stepwise", "cudnn"}) == 2);
  setenv(name, "stepwise", 1);
  CHECK(env_choice(name, {"persistent", "stepwise", "cudnn"}) == 1);
  setenv(name, "Registers", 1);  // a near miss is not taken for either
  check_throws_with(
      [&] {
        env_choice(name, {"passes", "registers"});
      },
      {"MSMIX_TEST_ENV_CHOICE=Registers", "expected passes (the default) or registers"});
  check_throws_with(
      [&] {
        env_choice(name, {"persistent", "stepwise", "cudnn"});
      },
      {"expected persistent (the default), stepwise or cudnn"});
  unsetenv(name);
}
