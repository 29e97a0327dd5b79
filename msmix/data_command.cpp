#include "msmix/data_command.h"

#include <filesystem>

#include "data/mmsa_writer.h"
#include "engine/error.h"
#include "msmix/trainer.h"

namespace msmix {

namespace fs = std::filesystem;

Dataset load_data_spec(const std::string& spec, const DataSpecOptions& options) {
  const bool synthetic = spec.rfind("synthetic:", 0) == 0;
  MSMIX_CHECK(synthetic || options.is_default(),
              "data '{}': --seed, --scale and --max-steps apply to synthetic:NAME only", spec);
  MSMIX_CHECK(options.scale > 0 && options.max_steps >= 0, "data '{}': --scale must be > 0 and --max-steps >= 0",
              spec);
  Config c = {{"data", spec},
              {"synthetic_seed", options.seed},
              {"synthetic_scale", options.scale},
              {"synthetic_max_steps", options.max_steps}};
  return load_data(c);
}

std::string data_write_command(const std::string& spec, const std::string& out_path,
                               const DataSpecOptions& options) {
  MSMIX_CHECK(fs::path(out_path).extension() == ".pkl", "--write '{}': the output should be a .pkl file", out_path);
  Dataset data = load_data_spec(spec, options);
  write_mmsa(data, out_path);

  std::error_code ec;
  const double mib = double(fs::file_size(out_path, ec)) / (1 << 20);
  std::string source = spec.rfind("synthetic:", 0) == 0 ? fmt::format("{} seed {}", spec, options.seed) : spec;
  auto dims = [](const Tensor& x) {  // [T, D] without N
    Shape s = x.shape();
    s.erase(s.begin());
    return shape_str(s);
  };
  const Split& t = data.train;
  return fmt::format("wrote {} ({:.1f} MiB): {}, train {} / valid {} / test {}, text {}, audio {}, vision {}{}",
                     out_path, mib, source, data.train.size(), data.valid.size(), data.test.size(), dims(t.text),
                     dims(t.audio), dims(t.vision), t.labels_t.defined() ? ", labels M/T/A/V" : "");
}

}  // namespace msmix
