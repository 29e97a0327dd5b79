// The trainer's resume point (last.safetensors + state.json, written at each epoch end and read by
// Trainer::resume) and the checks that a run directory holds this config, written by this build.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "engine/checkpoint.h"
#include "engine/error.h"
#include "msmix/trainer.h"

namespace msmix {
namespace {

// The keys whose values differ between two configs, or that only one of them has.
std::vector<std::string> differing_keys(const Config& a, const Config& b) {
  std::vector<std::string> out;
  for (auto it = a.begin(); it != a.end(); ++it)
    if (!b.contains(it.key()) || b[it.key()] != it.value()) out.push_back(it.key());
  for (auto it = b.begin(); it != b.end(); ++it)
    if (!a.contains(it.key())) out.push_back(it.key());
  return out;
}

}  // namespace

std::string version_stamp() { return fmt::format("{} ({})", MSMIX_VERSION, MSMIX_GIT_REV); }

std::string saved_config_mismatch(const std::string& dir, const Config& config) {
  RunDir run(dir);
  if (!run.has(kConfigFile)) return fmt::format("no {} in {}", kConfigFile, dir);
  Config saved = read_json_file<Config>(run.file(kConfigFile));
  if (!saved.is_object()) return fmt::format("its {} is not a JSON object", kConfigFile);
  const auto stamp = saved.find("msmix_version");
  const std::string version = stamp != saved.end() && stamp->is_string() ? stamp->get<std::string>() : "";
  if (version != version_stamp())
    return fmt::format("its {} is from msmix {}, this build is {}", kConfigFile, version, version_stamp());
  saved.erase("msmix_version");
  const std::vector<std::string> differ = differing_keys(config, saved);
  return differ.empty() ? "" : fmt::format("its {} differs from the expected config in: {}", kConfigFile,
                                           fmt::join(differ, ", "));
}

Json Trainer::epoch_state(int64_t epoch) const {
  Json s = {{"epoch", epoch},
            {"best_epoch", best_epoch_},
            {"best_valid_loss", json_double(best_valid_loss_)},
            {"rng",
             {{"dropout", {{"seed", default_generator().seed}, {"offset", default_generator().offset}}},
              {"mixing", {{"seed", mix_gen_.seed}, {"offset", mix_gen_.offset}}}}},
            {"scheduler", nullptr}};
  if (scheduler_) {
    const ReduceLROnPlateau::State& st = scheduler_->state();
    s["scheduler"] = {{"best", json_double(st.best)},
                      {"num_bad_epochs", st.num_bad_epochs},
                      {"cooldown_counter", st.cooldown_counter},
                      {"last_epoch", st.last_epoch}};
  }
  return s;
}

// last.safetensors holds model.*, mixer.* and optimizer.* tensors, and the state JSON in its metadata, so
// the resume point is one atomic file; state.json is a readable copy.
void Trainer::save_resume_point(int64_t epoch) {
  TensorDict tensors;
  for (const auto& [name, t] : model_->state_dict()) tensors["model." + name] = t;
  for (const auto& [name, t] : mixer_->state_dict()) tensors["mixer." + name] = t;
  for (const auto& [name, t] : optimizer_->state_dict()) tensors["optimizer." + name] = t;
  const Json state = epoch_state(epoch);
  RunDir dir(run_dir_);
  save_safetensors(dir.file(kLastCheckpointFile), tensors, {{"state", state.dump()}});
  dir.write_json(kStateFile, state);
}

void Trainer::resume() {
  MSMIX_CHECK(!run_dir_.empty(), "resume: no run directory given");
  RunDir dir(run_dir_);
  MSMIX_CHECK(dir.has(kConfigFile), "resume '{}': no {} there (not a run directory)", run_dir_, kConfigFile);
  const std::vector<std::string> differ = differing_keys(config_, saved_config(run_dir_));
  MSMIX_CHECK(differ.empty(), "resume '{}': the config differs from the saved one in: {}", run_dir_,
              fmt::join(differ, ", "));
  MSMIX_CHECK(dir.has(kLastCheckpointFile), "resume '{}': no {} (no epoch finished, or checkpoint=false)", run_dir_,
              kLastCheckpointFile);

  Checkpoint ck = load_safetensors(dir.file(kLastCheckpointFile));
  MSMIX_CHECK(ck.metadata.count("state"), "resume '{}': {} holds no state", run_dir_, kLastCheckpointFile);
  std::map<std::string, Tensor> model_state, mixer_state, optimizer_state;
  for (const auto& [name, t] : ck.tensors) {
    const size_t dot = name.find('.');
    const std::string prefix = name.substr(0, dot), rest = name.substr(dot + 1);
    if (prefix == "model") model_state[rest] = t;
    else if (prefix == "mixer") mixer_state[rest] = t;
    else if (prefix == "optimizer") optimizer_state[rest] = t.to(device_);
    else throw Error(fmt::format("resume '{}': unexpected tensor '{}' in {}", run_dir_, name, kLastCheckpointFile));
  }
  model_->load_state_dict(model_state);
  mixer_->load_state_dict(mixer_state);
  optimizer_->load_state_dict(optimizer_state);

  // The state is ours, written with the weights; a file edited or damaged since gives an error naming it.
  try {
    const Json state = Json::parse(ck.metadata["state"]);
    epochs_done_ = state.at("epoch").get<int64_t>();
    best_epoch_ = state.at("best_epoch").get<int64_t>();
    best_valid_loss_ = from_json_double(state.at("best_valid_loss"));
    default_generator() = Generator(state.at("rng").at("dropout").at("seed").get<uint64_t>());
    default_generator().offset = state.at("rng").at("dropout").at("offset").get<uint64_t>();
    mix_gen_ = Generator(state.at("rng").at("mixing").at("seed").get<uint64_t>());
    mix_gen_.offset = state.at("rng").at("mixing").at("offset").get<uint64_t>();
    if (scheduler_) {
      const Json& s = state.at("scheduler");
      MSMIX_CHECK(s.is_object(), "resume '{}': the checkpoint holds no scheduler state", run_dir_);
      ReduceLROnPlateau::State st;
      st.best = from_json_double(s.at("best"));
      st.num_bad_epochs = s.at("num_bad_epochs").get<int64_t>();
      st.cooldown_counter = s.at("cooldown_counter").get<int64_t>();
      st.last_epoch = s.at("last_epoch").get<int64_t>();
      scheduler_->load_state(st);
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // nlohmann's parse, type and missing-key errors; stod's
    throw Error(fmt::format("resume '{}': the training state in {} is unreadable: {}", run_dir_,
                            kLastCheckpointFile, e.what()));
  }

  // A kill between the log line and the checkpoint leaves one line too many: that epoch runs again.
  log_ = dir.read_log();
  MSMIX_CHECK(int64_t(log_.size()) >= epochs_done_, "resume '{}': {} has {} lines, the checkpoint is at epoch {}",
              run_dir_, kLogFile, log_.size(), epochs_done_);
  log_.resize(size_t(epochs_done_));
  dir.write_log(log_);
  // best.safetensors may be one epoch ahead of the checkpoint after such a kill; the replayed epoch then
  // writes the same weights again, so loading it here is safe.
  MSMIX_CHECK(dir.has(kBestWeightsFile), "resume '{}': no {}", run_dir_, kBestWeightsFile);
  best_state_.clear();
  for (const auto& [name, t] : load_safetensors(dir.file(kBestWeightsFile)).tensors) best_state_[name] = t.to(device_);
  resumed_ = true;
}

}  // namespace msmix
