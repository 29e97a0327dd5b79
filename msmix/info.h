// `msmix info`: what this build is and what it runs on.
#pragma once
#include <string>

namespace msmix {
std::string build_info();  // version, flags, threads, BLAS, CUDA, GPUs: one "key: value" per line
}  // namespace msmix
