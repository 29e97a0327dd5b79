// `msmix data SPEC --write out.pkl`: loads a dataset (synthetic:NAME or an MMSA .pkl, as --data does
// elsewhere) and writes it as an MMSA feature file (data/mmsa_writer.h), so a synthetic set can be fed to
// MMSA itself or to any script that reads MMSA's files.
//
//   msmix data synthetic:mosi --write mosi_synth.pkl --seed 7 --scale 0.5
//   msmix data aligned_50.pkl --write copy.pkl        (float32 everywhere, unused keys dropped)
#pragma once
#include <cstdint>
#include <string>

#include "data/dataset.h"

namespace msmix {

// How synthetic:NAME is generated (the same keys a run config has: synthetic_seed, synthetic_scale,
// synthetic_max_steps, with their defaults). Only synthetic data takes them.
struct DataSpecOptions {
  uint64_t seed = 1;
  double scale = 1;       // multiplies the split sizes (train 256 / valid 64 / test 128)
  int64_t max_steps = 0;  // > 0: cut every sequence to at most this many steps
  bool is_default() const { return seed == 1 && scale == 1 && max_steps == 0; }
};

// synthetic:NAME via make_synthetic, or an MMSA .pkl via load_mmsa (the trainer's load_data). Options
// given with a file are an error (they would be silently ignored).
Dataset load_data_spec(const std::string& spec, const DataSpecOptions& options = {});

// Loads `spec`, writes it to `out_path` atomically (write_mmsa), and returns a one-line summary:
// "wrote mosi.pkl (12.3 MiB): synthetic:mosi seed 1, train 256 / valid 64 / test 128, text [50, 768], ...".
std::string data_write_command(const std::string& spec, const std::string& out_path,
                               const DataSpecOptions& options = {});

}  // namespace msmix
