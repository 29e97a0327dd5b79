// libFuzzer target for the safetensors reader and the module loader behind `msmix train --weights` and
// `msmix eval`: any file must give a Checkpoint or an msmix::Error, never a crash, a sanitizer report, a hang
// or an allocation beyond the file's size. A file that reads is then loaded into a Linear(3, 2) +
// BatchNorm1d(2) under PyTorch's names (the seed's), strict and not, so names, shapes and counters are
// exercised too.
//
//   make fuzz FUZZ_TARGETS=safetensors   (seeds: tests/golden/checkpoint)
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "engine/checkpoint.h"
#include "engine/error.h"
#include "models/batch_norm.h"
#include "models/checkpoint_io.h"
#include "models/linear.h"
#include "models/module_list.h"

namespace {

// The reader takes a path, so each input goes through one scratch file, removed at exit.
struct ScratchFile {
  std::string path;
  ScratchFile() {
    char name[] = "/tmp/msmix-fuzz-XXXXXX.safetensors";
    const int fd = mkstemps(name, int(sizeof(".safetensors") - 1));
    if (fd < 0) std::abort();
    ::close(fd);
    path = name;
  }
  ~ScratchFile() { std::remove(path.c_str()); }
  void write(const uint8_t* data, size_t size) const {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f || (size > 0 && std::fwrite(data, 1, size, f) != size)) std::abort();
    std::fclose(f);
  }
};

struct Net : msmix::ModuleGroup {  // "net.fc.weight", "net.bn.running_var", ... as in the seed
  Net() : ModuleGroup("Net") {
    auto net = register_module("net", std::make_shared<msmix::ModuleGroup>("Sequential"));
    net->add("fc", std::make_shared<msmix::Linear>(3, 2));
    net->add("bn", std::make_shared<msmix::BatchNorm1d>(2));
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ScratchFile scratch;
  static Net model;
  scratch.write(data, size);
  try {
    const msmix::Checkpoint ck = msmix::load_safetensors(scratch.path);
    for (bool strict : {false, true}) {
      try {
        msmix::load_state_into(model, ck.tensors, strict, scratch.path);
      } catch (const msmix::Error&) {
      }
    }
  } catch (const msmix::Error&) {
  }
  return 0;
}
