#include "msmix/run_config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <sstream>

#include "data/synthetic.h"
#include "engine/allocator.h"
#include "engine/cuda_runtime.h"
#include "engine/error.h"
#include "msmix/run_dir.h"

namespace msmix {

namespace fs = std::filesystem;

namespace {

constexpr const char* kSyntheticPrefix = "synthetic:";

bool is_synthetic(const std::string& data) { return data.rfind(kSyntheticPrefix, 0) == 0; }

}  // namespace

double shortest_double(float f) { return std::stod(fmt::format("{}", f)); }

Device resolve_device(const std::string& name) {
  if (name == "auto") return cuda::device_count() > 0 ? Device::cuda(0) : Device::cpu();
  Device device;
  try {
    device = Device::parse(name);
  } catch (const Error&) {
    throw Error(fmt::format("--device: expected auto, cpu, cuda or cuda:N, got '{}'", name));
  }
  if (device.is_cuda()) {
    const int count = cuda::device_count();
    MSMIX_CHECK(device.index < count, "--device {}: no such CUDA GPU ({} found; CUDA {}); use --device cpu or auto",
                name, count, cuda::compiled() ? "compiled in" : "not compiled into this build");
  }
  return device;
}

namespace {
std::string lowercase(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The kind a file name or a synthetic name hints at anywhere in it, or "" when it names none.
std::string kind_in_name(const std::string& name) {
  const std::string lower = lowercase(name);
  for (const char* kind : {"sims", "mosei"})
    if (lower.find(kind) != std::string::npos) return kind;
  if (lower.find("utterance") != std::string::npos) return "mosi-utterance";
  if (lower.find("mosi") != std::string::npos) return "mosi";
  return "";
}

// The kind a folder names as a whole word (CH-SIMS, CMU_MOSEI, MOSI; not a user folder such as simsek), or "".
std::string kind_in_folder(const std::string& folder) {
  std::string lower = lowercase(folder);
  for (char& c : lower)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = ' ';
  std::istringstream words(lower);
  for (std::string word; words >> word;)
    if (word == "sims" || word == "mosei" || word == "mosi") return word;
  return "";
}
}  // namespace

std::string dataset_kind(const std::string& data) {
  std::string kind = kind_in_name(is_synthetic(data) ? data_name(data) : fs::path(data).stem().string());
  // MMSA's files are named after their layout, the dataset being a folder (MOSEI/Processed/aligned_50.pkl):
  // the nearest folder that names one decides.
  if (kind.empty() && !is_synthetic(data)) {
    std::error_code ec;  // no current folder: the path as given
    fs::path file = fs::absolute(fs::path(data), ec);
    file = (ec ? fs::path(data) : file).lexically_normal();
    for (fs::path dir = file.parent_path(); kind.empty() && dir.has_relative_path(); dir = dir.parent_path())
      kind = kind_in_folder(dir.filename().string());
  }
  return kind.empty() ? "mosi" : kind;
}

std::string data_name(const std::string& data) {
  if (is_synthetic(data)) return data.substr(std::string(kSyntheticPrefix).size());
  return fs::path(data).stem().string();
}

Config make_run_config(const RunSpec& spec) {
  MSMIX_CHECK(!spec.data.empty(), "--data: give a path to an MMSA .pkl file or synthetic:NAME");
  const std::string dataset = spec.dataset.empty() ? dataset_kind(spec.data) : spec.dataset;
  Config c = backbone_defaults(spec.model, dataset);
  c["data"] = spec.data;
  c["mix"] = spec.mix;
  c["seed"] = spec.seed;
  c["device"] = spec.device;
  const MixConfig m;
  c["mix_delta"] = shortest_double(m.delta);
  c["mix_alpha"] = shortest_double(m.alpha);
  c["mix_heads"] = m.heads;
  c["mix_weight"] = shortest_double(m.w_mix);
  c["sal_weight"] = shortest_double(m.w_sal);
  c["sal_scale"] = shortest_double(m.sal_scale);
  c["sal_s"] = shortest_double(label_scale_for(dataset));
  c["mix_eps"] = shortest_double(m.eps);
  c["mix_count"] = m.mix_count;                // multimix: mixed samples per batch (0: the batch size)
  c["mix_center"] = m.center_intensity_input;  // an experiment, off by default (msmix/mixing.h)
  c["mix_lr"] = -1.0;  // the intensity predictors' learning rate; -1 = the backbone's (the released code's)
  if (!c.contains("grad_clip_norm")) c["grad_clip_norm"] = -1.0;
  c["checkpoint"] = true;
  c["shuffle"] = true;  // false: train batches in file order every epoch (framework-to-framework checks)
  c["cuda_graph"] = false;  // true: on the GPU, capture the training step once and replay it (msmix/graph_step.h)
  if (is_synthetic(spec.data)) {
    c["synthetic_seed"] = 1;
    c["synthetic_scale"] = 1.0;
    c["synthetic_max_steps"] = 0;
  }
  if (!spec.weights.empty()) {
    std::error_code ec;
    MSMIX_CHECK(fs::is_regular_file(spec.weights, ec), "--weights '{}': no such file", spec.weights);
    c["weights"] = fs::absolute(spec.weights).lexically_normal().string();
  }
  if (spec.max_epochs > 0) c["max_epochs"] = spec.max_epochs;
  apply_overrides(c, spec.overrides);
  // Checked after the overrides, which may have set them.
  parse_mix_method(config_string(c, "mix"));
  c["device"] = resolve_device(config_string(c, "device")).str();
  MSMIX_CHECK(config_int(c, "max_epochs") > 0 && config_int(c, "batch_size") > 0 && config_int(c, "early_stop") > 0,
              "{}: max_epochs ({}), batch_size ({}) and early_stop ({}) must be positive", spec.model,
              config_int(c, "max_epochs"), config_int(c, "batch_size"), config_int(c, "early_stop"));
  return c;
}

MixConfig mix_config(const Config& config) {
  MixConfig m;
  m.method = parse_mix_method(config_string(config, "mix"));
  m.delta = config_float(config, "mix_delta");
  m.alpha = config_float(config, "mix_alpha");
  m.heads = config_int(config, "mix_heads");
  m.w_mix = config_float(config, "mix_weight");
  m.w_sal = config_float(config, "sal_weight");
  m.sal_scale = config_float(config, "sal_scale");
  m.label_scale = config_float(config, "sal_s");
  m.eps = config_float(config, "mix_eps");
  m.center_intensity_input = config_bool_or(config, "mix_center", false);  // absent in older configs
  m.mix_count = config_int_or(config, "mix_count", 0);  // absent in older configs
  return m;
}

Dataset load_data(const Config& config) {
  const std::string data = config_string(config, "data");
  if (is_synthetic(data)) {
    SyntheticOptions o;
    o.size_scale = config_float(config, "synthetic_scale");
    o.max_steps = config_int(config, "synthetic_max_steps");
    o.with_text_bert = config_bool_or(config, "use_bert", false);  // token ids for a backbone's BERT
    return make_synthetic(data_name(data), uint64_t(config_int(config, "synthetic_seed")), o).dataset;
  }
  MSMIX_CHECK(fs::path(data).extension() == ".pkl",
              "--data '{}': expected an MMSA feature file (*.pkl) or synthetic:NAME (NAME one of {})", data,
              fmt::join(synthetic_names(), ", "));
  std::error_code ec;
  MSMIX_CHECK(fs::is_regular_file(data, ec), "--data '{}': no such file", data);
  return load_mmsa(data);
}

namespace {
// MMSA's metrics read labels on their dataset's scale (MOSI and MOSEI's Acc-7 rounds into [-3, 3], SIMS's
// classes split [-1, 1]), and sal_s follows it: a label past the bound means the data is scored as the wrong
// dataset, with metrics that would be silently wrong.
void check_label_scale(const Dataset& data, const std::string& kind) {
  const double bound = label_scale_for(kind);
  for (const char* name : {"train", "valid", "test"}) {
    const LabelStats st = label_stats(data.split(name).labels);
    const double far = std::max(-st.min, st.max);
    MSMIX_CHECK(far <= bound, "dataset '{}': split '{}' has labels in [{}, {}], outside [-{}, {}], the range {}'s "
                "metrics score; {}", data.name, name, float(st.min), float(st.max), bound, bound, kind,
                kind == "sims" ? "for labels in [-3, 3] pass --dataset mosi or mosei"
                               : "rescale the labels to it first");
  }
}
}  // namespace

void prepare_data(Dataset& data, Config& config) {
  prepare_like_mmsa(data, config_bool_or(config, "need_normalized", false));
  // Averaging over time freed the [N, T, D] audio and vision (most of a MOSEI file for TFN, LMF, LF_DNN): give
  // those blocks back to the system rather than keep them cached for the whole run.
  allocator_empty_cache(Device::cpu());
  const Split& s = data.train;
  MSMIX_CHECK(s.size() > 0 && data.valid.size() > 0 && data.test.size() > 0,
              "dataset '{}': train, valid and test must each hold samples (got {}, {}, {})", data.name, s.size(),
              data.valid.size(), data.test.size());
  check_label_scale(data, config_string(config, "dataset"));
  // With use_bert the text goes through the backbone's BERT: its width is BERT's hidden width.
  const bool bert = config_bool_or(config, "use_bert", false);
  if (bert)
    MSMIX_CHECK(s.text_bert.defined(), "dataset '{}': use_bert=true reads text_bert (BERT token ids), which this "
                "file does not have; set use_bert=false to use its text features", data.name);
  const int64_t text = !bert                            ? s.text.size(-1)
                       : config.contains("bert_hidden") ? config_int(config, "bert_hidden")
                                                        : 768;
  config["feature_dims"] = {text, s.audio.size(-1), s.vision.size(-1)};
}

Config saved_config(const std::string& dir) {
  const std::string path = RunDir(dir).file(kConfigFile);
  Config c = read_json_file<Config>(path);
  MSMIX_CHECK(c.is_object(), "'{}' is not a run config: a JSON object of keys was expected, got {}", path,
              c.type_name());
  c.erase("msmix_version");
  return c;
}

}  // namespace msmix
