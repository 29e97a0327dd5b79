// What a run is: the command line's RunSpec, the run config built from it (the defaults table plus the run
// keys and overrides), and the data it names, loaded and prepared as MMSA's loader does.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "engine/device.h"
#include "models/defaults.h"
#include "msmix/mixing.h"

namespace msmix {

// ---- what a run is

// The command line's view of a run. Everything else comes from the defaults table (models/defaults.h).
struct RunSpec {
  std::string model = "tfn";            // --model: lf_dnn, tfn, lmf, ...
  std::string data = "synthetic:mosi";  // --data: synthetic:NAME or a path to an MMSA .pkl
  std::string dataset;                  // --dataset: mosi | mosei | sims; "" = guessed from the data's name
  std::string mix = "none";             // --mix: none | mixup | manifold | multimix | msmix
  uint64_t seed = 1111;                 // --seed
  std::string device = "auto";          // --device: auto | cpu | cuda | cuda:N
  int64_t max_epochs = 0;               // --epochs: > 0 replaces the table's max_epochs
  std::vector<std::string> overrides;   // --set key=value on the run config (any key it holds)
  std::string weights;                  // --weights: a safetensors state dict the backbone starts from
};

// "auto": the first CUDA GPU when one exists, else the CPU. "cuda" without a GPU is an error saying so.
Device resolve_device(const std::string& name);
// Which defaults-table / metrics dataset a --data value belongs to, from its name: "sims" when it contains
// sims, "mosei" when it contains mosei, "mosi-utterance" when it contains utterance (shared/data/mosi-utterance:
// MOSI labels, one step per modality), "mosi" when it contains mosi (any case). For a file whose stem says none
// (MMSA's aligned_50.pkl), the nearest folder that is or holds the word sims, mosei or mosi decides
// (MOSEI/Processed/aligned_50.pkl is mosei); else "mosi". prepare_data refuses labels that do not fit the kind.
std::string dataset_kind(const std::string& data);
// The name a --data value gives its dataset: NAME for synthetic:NAME, the file's stem for a path.
std::string data_name(const std::string& data);

// The run config: backbone_defaults(model, dataset) plus the run keys, then spec.overrides applied with the
// table's type checks. Run keys: data, mix, seed, device (resolved), the mixing constants (mix_delta,
// mix_alpha, mix_heads, mix_weight, sal_weight, sal_scale, sal_s, mix_eps, mix_center, mix_count, mix_lr),
// grad_clip_norm (-1 = off), checkpoint (true: write the resume point each epoch), shuffle (true: a fresh order
// of the training batches each epoch), cuda_graph (false; true: on the GPU the step is captured once and
// replayed), for synthetic data synthetic_seed, synthetic_scale, synthetic_max_steps, and with spec.weights
// "weights" (its absolute path).
Config make_run_config(const RunSpec& spec);
// The mixing constants of a run config.
MixConfig mix_config(const Config& config);

// Loads config["data"]: make_synthetic for synthetic:NAME (options from the synthetic_* keys), load_mmsa
// for a .pkl path. A missing file or an unknown form is an error saying what was expected.
Dataset load_data(const Config& config);
// MMSA's loader behaviour (audio -inf -> 0; audio and vision averaged over time when need_normalized), and
// config["feature_dims"] set to the data's widths, so the backbone is built for the data at hand.
void prepare_data(Dataset& data, Config& config);

// The shortest decimal that reads back as f, as a double (1e-3f -> 0.001, not 0.0010000000474974513): how
// float settings and learning rates are written into JSON.
double shortest_double(float f);

// The run config as saved in <dir>/config.json, without the version stamp (what resume and reuse compare).
Config saved_config(const std::string& dir);

}  // namespace msmix
