// libFuzzer target for the restricted unpickler: any input must give a Value or an msmix::Error, never a
// crash, a sanitizer report, a hang or an allocation out of proportion to the input. When a Value comes
// back, the conversions a dataset loader uses are exercised too.
//
//   make fuzz     (or: build/fuzz_pickle -max_total_time=60 tests/golden/pickle; the test fixtures are the seeds)
#include <cstddef>
#include <cstdint>

#include "data/pickle.h"
#include "engine/error.h"

namespace {

// Walks a loaded value (the result is bounded in depth) and converts what converts.
void touch(const msmix::Value& v, int depth) {
  using msmix::Kind;
  if (depth > msmix::kMaxPickleDepth + 1) __builtin_trap();  // the depth limit did not hold
  try {
    switch (v.kind()) {
      case Kind::list: case Kind::tuple: case Kind::set:
        for (const msmix::Value& c : v.items()) touch(c, depth + 1);
        v.to_tensor();
        break;
      case Kind::dict:
        for (const auto& [key, value] : v.as_dict().entries()) touch(value, depth + 1);
        break;
      case Kind::ndarray: {
        const msmix::NdArray& a = v.as_array();
        if (a.dtype.is_numeric()) {
          v.to_tensor();
          v.to_int64s();
        } else {
          v.to_strings();
        }
        break;
      }
      default:
        v.describe();
    }
  } catch (const msmix::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    msmix::Value v = msmix::load_pickle(data, size);
    touch(v, 0);
  } catch (const msmix::Error&) {
  }
  return 0;
}
