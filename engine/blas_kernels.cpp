#include "engine/blas_kernels.h"

#include <cblas.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <mutex>

// OpenBLAS's own (exported) entry points of its DYNAMIC_ARCH dispatcher: quit forgets the chosen kernel table,
// init picks one again, reading OPENBLAS_CORETYPE first.
extern "C" void gotoblas_dynamic_init(void);
extern "C" void gotoblas_dynamic_quit(void);

namespace msmix {

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// OpenBLAS kernel sets that already use AVX2 (or better): keep them.
bool has_avx2_kernels(const std::string& core) {
  for (const char* name : {"haswell", "skylakex", "cooperlake", "sapphirerapids", "zen", "excavator"})
    if (core == name) return true;
  return false;
}

// __builtin_cpu_supports checks CPUID and that the OS saves the wider registers (XGETBV).
const char* best_core_for_this_cpu() {
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  return nullptr;
}

std::string choose() {
  const std::string detected = openblas_get_corename();
  if (std::getenv("OPENBLAS_CORETYPE")) return fmt::format("{} (OPENBLAS_CORETYPE)", detected);
  const char* keep = std::getenv("MSMIX_BLAS_KEEP_CORE");
  if (keep && std::string(keep) == "1") return fmt::format("{} (MSMIX_BLAS_KEEP_CORE=1)", detected);
  const char* better = best_core_for_this_cpu();
  if (!better || has_avx2_kernels(lower(detected))) return detected;
  setenv("OPENBLAS_CORETYPE", better, 0);
  gotoblas_dynamic_quit();
  gotoblas_dynamic_init();
  unsetenv("OPENBLAS_CORETYPE");  // child processes (e.g. the PyTorch benchmark twin) see the machine as it is
  const std::string now = openblas_get_corename();
  return fmt::format("{} (OpenBLAS detected {} on a CPU with {})", now, detected,
                     std::string(better) == "SkylakeX" ? "AVX-512" : "AVX2 + FMA");
}

}  // namespace

const std::string& choose_blas_kernels() {
  static std::once_flag once;
  static std::string what;
  std::call_once(once, [] { what = choose(); });
  return what;
}

}  // namespace msmix
