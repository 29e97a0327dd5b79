// Errors: every bad input becomes an msmix::Error whose message names the op,
// the shapes and the devices involved. Never assert/abort on user input.
#pragma once
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <stdexcept>
#include <string>

namespace msmix {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// MSMIX_CHECK(cond, "fmt {}", args...): throws Error with the formatted message when cond is false.
#define MSMIX_CHECK(cond, ...)                              \
  do {                                                      \
    if (!(cond)) throw ::msmix::Error(fmt::format(__VA_ARGS__)); \
  } while (0)

}  // namespace msmix
