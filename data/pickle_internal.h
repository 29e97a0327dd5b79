// Text helpers shared by the two halves of the unpickler (data/pickle.cpp, data/pickle_value.cpp); not
// part of the API.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace msmix::pickle_internal {

// A string for an error message: quoted, control bytes escaped, cut after 60 bytes.
std::string quoted(const std::string& s);

// Length of the valid UTF-8 sequence at p (strict: no overlongs, surrogates or code points > 0x10FFFF),
// or 0 when invalid. *cp receives the code point.
size_t utf8_sequence(const uint8_t* p, size_t left, uint32_t* cp);

}  // namespace msmix::pickle_internal
