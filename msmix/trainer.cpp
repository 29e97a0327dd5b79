#include "msmix/trainer.h"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <optional>

#include "data/loader.h"
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/profile.h"
#include "models/bert.h"
#include "models/checkpoint_io.h"
#include "models/registry.h"
#include "msmix/grad_clip.h"
#include "msmix/graph_step.h"
#include "msmix/mix_stats.h"
#include "ops/ops.h"
#include "ops/pair_selection.h"

namespace msmix {

namespace fs = std::filesystem;

namespace {

constexpr double kImprovement = 1e-6;  // MMSA: a better epoch lowers the valid loss by at least this
// Streams derived from the run seed (the init stream is the seed itself).
constexpr uint64_t kDropoutStream = 1, kMixStream = 2;

// splitmix64 of seed and stream: independent Philox keys for the run's streams.
uint64_t derive_seed(uint64_t seed, uint64_t stream) {
  uint64_t z = seed + stream * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::atomic<bool> g_stop{false};

extern "C" void on_sigint(int) {
  g_stop.store(true);
  const char msg[] = "\nmsmix: stopping at the end of this step (Ctrl-C again to kill)\n";
  ssize_t ignored = ::write(2, msg, sizeof(msg) - 1);
  (void)ignored;
}

}  // namespace

// ---------------------------------------------------------------- Ctrl-C

void install_interrupt_handler() {
  struct sigaction action {};
  action.sa_handler = on_sigint;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND;  // the second Ctrl-C gets the default action
  sigaction(SIGINT, &action, nullptr);
}
void request_stop() { g_stop.store(true); }
bool stop_requested() { return g_stop.load(); }
void clear_stop_request() { g_stop.store(false); }

// ---------------------------------------------------------------- the trainer

// The epoch's loss sums. Each step leaves its values on the device (step_values); read_epoch_sums brings them
// all back in one copy at the end of the epoch, since a read per step would wait for the GPU every step.
struct Trainer::EpochSums {
  std::vector<Tensor> step_values;  // per step: [total, task] or [total, task, mix] or [total, task, mix, sal]
  double total = 0, task = 0, mix = 0, sal = 0;
  int64_t steps = 0;
  MixStats mixing;  // what the mixer did: log.jsonl's "mix"
};

Trainer::Trainer(Config config, const Dataset& data, std::string run_dir)
    : config_(std::move(config)), data_(data), run_dir_(std::move(run_dir)) {
  build();
}

Trainer::~Trainer() = default;

int64_t Trainer::graph_replays() const { return graph_ ? graph_->replays() : 0; }

std::string Trainer::graph_status() const {
  if (!config_bool_or(config_, "cuda_graph", false)) return "";
  if (!graph_note_.empty()) return graph_note_;
  if (!device_.is_cuda()) return "not used: the CPU runs uncaptured";
  return fmt::format("{} of the steps replayed a captured graph", graph_replays());
}

void Trainer::build() {
  device_ = resolve_device(config_string(config_, "device"));
  const uint64_t seed = uint64_t(config_int(config_, "seed"));
  const std::string name = config_string(config_, "model");
  // need_data_aligned (MMSA's key; GLoMo's is true): the backbone reads MMSA's word-aligned files, audio and
  // vision step for step with the text. On an unaligned file it would train on other sequences (and GLoMo's
  // attention over 375-500 steps costs 10x), so that is refused unless the user turns the key off.
  if (config_bool_or(config_, "need_data_aligned", false)) {
    const Split& s = data_.train;
    const int64_t L = s.text.size(1), Ta = s.audio.size(1), Tv = s.vision.size(1);
    MSMIX_CHECK(Ta == L && Tv == L,
                "{}: reads word-aligned data (MMSA's aligned_50 files: audio and vision step for step with the text), "
                "but '{}' has {} text, {} audio and {} vision steps; use the aligned file (synthetic:mosi-aligned for "
                "synthetic data), or set need_data_aligned=false to train on these sequences anyway",
                name, data_.name, L, Ta, Tv);
  }
  manual_seed(seed);  // the init stream
  model_ = make_backbone(name, config_feature_dims(config_), config_);
  // use_bert: the backbone fine-tunes a pretrained BERT. From random BERT weights a run would train nothing
  // like the paper's model, so it needs bert_weights, or --weights for the whole model.
  if (config_bool_or(config_, "use_bert", false)) {
    BertModel* bert = model_->bert();
    MSMIX_CHECK(bert, "{}: use_bert=true, but msmix's {} has no BERT to fine-tune; set use_bert=false", name, name);
    const std::string bert_path = config_.contains("bert_weights") ? config_string(config_, "bert_weights") : "";
    if (!bert_path.empty()) load_bert_weights(*bert, bert_path);
    MSMIX_CHECK(!bert_path.empty() || config_.contains("weights"),
                "{}: use_bert=true fine-tunes a pretrained BERT: set bert_weights=PATH (bert-base-uncased as "
                "safetensors; scripts/pth_to_safetensors.py converts a PyTorch .bin), or give --weights for the "
                "whole model",
                name);
  }
  model_->to(device_);
  // "weights": start from a saved state dict (fine-tuning, scoring MMSA-trained weights). Strict: a missing,
  // unexpected or mis-shaped name is an error listing them all. The init draws above still happen, so the
  // mixer and dropout streams are those of a run without weights.
  if (config_.contains("weights")) {
    const std::string path = config_string(config_, "weights");
    std::error_code ec;
    MSMIX_CHECK(fs::is_regular_file(path, ec), "--weights '{}': no such file", path);
    load_into(*model_, path);
  }

  // The representation widths the intensity predictors need: one eval-mode encode of two samples
  // (eval mode draws nothing and leaves BatchNorm's running statistics alone).
  Representations probe;
  {
    NoGradGuard no_grad;
    model_->eval();
    const int64_t n = std::min<int64_t>(2, data_.train.size());
    std::vector<int64_t> rows;
    for (int64_t i = 0; i < n; ++i) rows.push_back(i);
    Batch b = gather_batch(data_.train, rows);
    b.text = b.text.defined() ? b.text.to(device_) : b.text;
    b.text_bert = b.text_bert.defined() ? b.text_bert.to(device_) : b.text_bert;
    b.audio = b.audio.to(device_);
    b.vision = b.vision.to(device_);
    probe = model_->encode(model_input(b, config_));
    model_->train();
  }
  mixer_ = make_mixer(mix_config(config_), probe.t.size(-1), probe.a.size(-1), probe.v.size(-1));
  MSMIX_CHECK(mixer_->config.method != MixMethod::MSMix || config_int(config_, "batch_size") <= kMaxSelectionBatch,
              "{}: MS-Mix selects its pairs in batches of at most {} samples, batch_size is {}", name,
              kMaxSelectionBatch, config_int(config_, "batch_size"));
  // MMSA's loop with update_epochs 0 zeroes the grads and never steps: a run that trains nothing, so refuse it.
  MSMIX_CHECK(config_int_or(config_, "update_epochs", 1) >= 1,
              "{}: update_epochs ({}) must be at least 1 (batches whose grads add up before each optimizer step; "
              "with 0 no step would ever run)",
              name, config_int_or(config_, "update_epochs", 1));
  mixer_->to(device_);
  manual_seed(derive_seed(seed, kDropoutStream));  // dropout: the same stream whatever the mixer drew at init
  mix_gen_ = Generator(derive_seed(seed, kMixStream));

  // Optimizer groups as MMSA's trainer builds them, plus the mixer's predictors (the released MS-Mix code
  // keeps them inside the model, so they share its lr and weight decay; mix_lr > 0 gives them their own lr).
  const float lr = config_float(config_, "learning_rate");
  const float weight_decay = config_float_or(config_, "weight_decay", 0.0f);
  std::vector<ParamGroup> groups;
  for (const NamedParamGroup& g : parameter_groups(*model_, config_)) {
    groups.push_back({g.tensors(), g.lr, g.weight_decay});
    group_names_.push_back(g.name);
  }
  if (!mixer_->parameters().empty()) {
    const float mix_lr = config_float_or(config_, "mix_lr", -1.0f);  // absent in configs written before it
    groups.push_back({mixer_->parameters(), mix_lr > 0 ? mix_lr : lr, weight_decay});
    group_names_.push_back("mixer");
  }
  const std::string kind = config_string(config_, "optimizer");
  if (kind == "adam" || kind == "adamw") {
    AdamOptions o;
    o.lr = lr;
    o.weight_decay = weight_decay;
    if (kind == "adam") optimizer_ = std::make_unique<Adam>(groups, o);
    else optimizer_ = std::make_unique<AdamW>(groups, o);
  } else if (kind == "sgd") {
    SGDOptions o;
    o.lr = lr;
    o.weight_decay = weight_decay;
    o.momentum = config_float_or(config_, "momentum", 0.0f);
    optimizer_ = std::make_unique<SGD>(groups, o);
  } else {
    throw Error(fmt::format("{}: unknown optimizer '{}' (known: adam, adamw, sgd)", name, kind));
  }
  // cuda_graph: capture the step once and replay it (msmix/graph_step.h); on the GPU only (the CPU runs every
  // step as it is, and results.json says so).
  if (config_bool_or(config_, "cuda_graph", false) && device_.is_cuda()) {
    // Every parameter the step's backward writes a grad for: the backbone's and the mixer's (MS-Mix's
    // intensity predictors), so each replay's grads are the ones the optimizer reads.
    std::vector<Tensor> params = model_->parameters();
    for (const Tensor& p : mixer_->parameters()) params.push_back(p);
    graph_ = std::make_unique<GraphStep>(params, config_int_or(config_, "update_epochs", 1) > 1);
  }
  const std::string scheduler = config_.contains("scheduler") ? config_string(config_, "scheduler") : "none";
  if (scheduler == "reduce_on_plateau") {
    ReduceLROnPlateau::Options o;  // MMSA: mode min, PyTorch's threshold 1e-4 (relative)
    o.factor = config_float_or(config_, "scheduler_factor", 0.1f);
    o.patience = config_int(config_, "patience");
    scheduler_ = std::make_unique<ReduceLROnPlateau>(*optimizer_, o);
  } else if (scheduler == "warmup_cosine_epochs") {
    const int64_t warmup = config_int(config_, "warmup_epochs"), cosine = config_int(config_, "cosine_epochs");
    EpochSchedule::warmup_cosine(1, warmup, cosine);  // checks the two now, not at the first epoch
    epoch_schedule_ = std::make_unique<EpochSchedule>(
        *optimizer_, [=](int64_t e) { return EpochSchedule::warmup_cosine(e, warmup, cosine); });
  } else if (scheduler == "multistep") {
    const std::vector<int64_t> milestones = config_ints(config_, "milestones", 2);
    const double gamma = config_float(config_, "scheduler_factor");
    epoch_schedule_ = std::make_unique<EpochSchedule>(
        *optimizer_, [=](int64_t e) { return EpochSchedule::multistep(e, milestones, gamma); });
  } else {
    MSMIX_CHECK(scheduler == "none",
                "{}: unknown scheduler '{}' (known: none, reduce_on_plateau, warmup_cosine_epochs, multistep)", name,
                scheduler);
  }
}

int64_t Trainer::steps_per_epoch() const {
  const int64_t n = data_.train.size(), b = config_int(config_, "batch_size");
  return n % b == 1 && n > 1 ? n / b : (n + b - 1) / b;  // see fit(): a last batch of one sample is dropped
}

std::string Trainer::last_checkpoint_note() const {
  if (run_dir_.empty()) return "no run directory, nothing kept";
  if (epochs_done_ == 0) return "no checkpoint yet (no epoch finished)";
  RunDir dir(run_dir_);
  std::string note =
      fmt::format("last good checkpoint: {} (end of epoch {})", dir.file(kLastCheckpointFile), epochs_done_);
  if (!config_bool(config_, "checkpoint")) note = "no resume point (checkpoint=false)";
  return fmt::format("{}; best weights: {} (epoch {})", note, dir.file(kBestWeightsFile), best_epoch_);
}

std::string Trainer::non_finite_loss_cause(const std::string& split) const {
  // Read only when a loss went bad: the inputs are the likelier cause, and a user's file may hold NaN or inf
  // (MMSA's loader keeps them too, except audio's -inf and, for averaged backbones, NaN).
  const std::string found = non_finite_inputs(data_.split(split));
  if (!found.empty())
    return fmt::format("the {} split's inputs hold non-finite values ({}; `msmix data` counts them per split), "
                       "and a batch with one of those rows gives a non-finite loss: clean the file's features",
                       split, found);
  return fmt::format("the {} split's inputs are all finite, so the model diverged: try a lower learning_rate, or "
                     "grad_clip / grad_clip_norm", split);
}

Evaluation Trainer::score(const std::string& split, const std::string& when) {
  try {
    return evaluate(*model_, data_.split(split), config_, device_);
  } catch (const Error& e) {  // a non-finite prediction: the run ends as a failure, recorded in results.json
    fail(fmt::format("scoring the {} split {}: {}", split, when, e.what()));
  }
}

void Trainer::fail(const std::string& message) {
  const std::string full = fmt::format("train: {}; the run stopped ({})", message, last_checkpoint_note());
  if (!run_dir_.empty()) {
    Json r = {{"status", "failed"}, {"error", full}, {"epochs", epochs_done_}, {"best_epoch", best_epoch_}};
    RunDir(run_dir_).write_json(kResultsFile, r);
  }
  throw Error(full);
}

// Forward, loss, backward and clipping of one batch: no zeroing, no optimizer step (what a CUDA graph
// captures), with the step's mixing draws (mixer.draw(), made before). Returns the step's loss values [total,
// task(, mix(, sal))] on the device; `mix` gets the mixer's result and `total` (when given) the total loss,
// detached.
Tensor Trainer::forward_backward(const Batch& batch, const Tensor& draws, MixResult& mix, Tensor* total) {
  const int64_t B = batch.size();
  std::optional<ProfileRange> forward_range(std::in_place, "forward");
  // Sub-ranges for the op profiler and Nsight: the backbone's two halves, the mixing between them, the loss.
  std::optional<ProfileRange> part(std::in_place, "encode");
  Representations reps = model_->encode(model_input(batch, config_));
  part.emplace("mix");
  mix = mixer_->mix(reps, batch.labels, draws);
  part.emplace("fuse");
  ModelOutput out = model_->fuse(mix.active ? concat_batches(reps, mix.mixed) : reps);  // [B or B + N, 1]
  part.emplace("loss");
  const int64_t rows = out.prediction.size(0);  // B + N: N = B but for MultiMix's mix_count
  Tensor pred = mix.active ? slice(out.prediction, 0, 0, B) : out.prediction;
  Tensor mixed_pred = mix.active ? slice(out.prediction, 0, B, rows) : Tensor();
  Tensor task = task_loss(config_, pred, reshape(batch.labels, {B, 1}));
  if (out.aux_loss.defined()) task = add(task, out.aux_loss);
  const Mixer::LossTerms terms = mixer_->loss_terms(task, mixed_pred, mix);
  const Tensor& loss = terms.total;
  part.reset();
  forward_range.reset();
  Tensor values;
  {
    NoGradGuard no_grad;
    std::vector<Tensor> parts = {reshape(loss, {1}), reshape(task, {1})};
    if (terms.mix.defined()) parts.push_back(reshape(terms.mix, {1}));
    if (terms.sal.defined()) parts.push_back(reshape(terms.sal, {1}));
    values = concat(parts, 0);
  }

  // No check of the loss here: reading it would wait for the GPU. A non-finite loss is found (and named) when
  // the epoch's values are read back; the weights it spoils are never saved (the resume point and best
  // weights are written only after that read).
  loss.backward();
  if (total) *total = loss.detach();
  const std::vector<Tensor> params = trained_parameters();
  const float clip_value = config_float(config_, "grad_clip"), clip_norm = config_float(config_, "grad_clip_norm");
  if (clip_value > 0) clip_grad_value(params, clip_value);  // MMSA: after every backward (-1 = off)
  if (clip_norm > 0) clip_grad_norm(params, clip_norm);
  return values;
}

std::vector<Tensor> Trainer::trained_parameters() const {
  std::vector<Tensor> all;
  for (const ParamGroup& g : optimizer_->param_groups()) all.insert(all.end(), g.params.begin(), g.params.end());
  return all;
}

Tensor Trainer::train_step(const Batch& batch, EpochSums& sums) {
  ProfileRange step_range("train step");  // nests "forward", then "backward" and "optimizer step" (their own)
  const int64_t update_every = config_int_or(config_, "update_epochs", 1);
  if (left_in_group_ == update_every) {  // MMSA: zero the grads at the start of each accumulation group
    if (graph_ && graph_->captured() && update_every > 1) {
      graph_->zero_grads();  // in place: the graph adds into these buffers
    } else {
      optimizer_->zero_grad();
      model_->zero_grad();  // also the parameters no group trains (LMF's fusion weights)
      mixer_->zero_grad();
    }
  }
  --left_in_group_;
  // The step's random numbers for mixing, drawn on the host before it (nothing for none): the step itself
  // then needs no host, captured or not.
  const Tensor draws = mixer_->draw(batch.size(), mix_gen_, device_);
  // A CUDA graph step (cuda_graph): one eager step first (the optimizer's state, cuBLAS's workspace), then
  // the capture, then replays for every batch of the captured size; other sizes run eagerly. The graph's
  // outputs: the loss values, and the mixing statistics' values when it mixes.
  Tensor values;
  PendingMixStep mixing;
  const bool graph_size = graph_ && (graph_->captured() ? graph_->batch_size() == batch.size()
                                                         : batch.size() == config_int(config_, "batch_size"));
  if (graph_size && ++graph_steps_ > 1) {
    try {
      const std::vector<Tensor> out =
          graph_->captured() ? graph_->replay(batch, draws)
                             : graph_->capture(batch, draws, [this](const Batch& b, const Tensor& d) {
                                 MixResult mix;
                                 Tensor v = forward_backward(b, d, mix);
                                 graph_mixing_ = pending_mix_step(mix);  // what the host knows of the step's mixing
                                 return std::vector<Tensor>{v, graph_mixing_.values};
                               });
      values = out[0];
      mixing = graph_mixing_;
      mixing.values = out[1];
    } catch (const Error& e) {
      if (graph_->captured()) throw;  // a replay failed: a GPU error, not a step that cannot be captured
      graph_note_ = fmt::format("not used: {}", e.what());  // this step and the rest run uncaptured
      graph_.reset();
    }
  }
  Tensor loss;
  if (values.defined()) {
    NoGradGuard no_grad;
    loss = reshape(slice(values, 0, 0, 1), {});
  } else {
    MixResult mix;
    values = forward_backward(batch, draws, mix, &loss);
    mixing = pending_mix_step(mix);
  }
  sums.step_values.push_back(values);
  if (left_in_group_ == 0) {
    optimizer_->step();
    left_in_group_ = update_every;
  }
  sums.mixing.add(mixing);
  ++sums.steps;
  return loss;
}

// One read back for the whole epoch; the sums add the values in step order in double, as a sum per step would.
void Trainer::read_epoch_sums(EpochSums& sums, int64_t epoch, int64_t steps) {
  if (sums.step_values.empty()) return;
  std::vector<float> values;
  {
    NoGradGuard no_grad;
    values = concat(sums.step_values, 0).to_vector();
  }
  size_t at = 0;
  for (size_t k = 0; k < sums.step_values.size(); ++k) {
    const int64_t n = sums.step_values[k].numel();
    const double total = values[at];
    if (!std::isfinite(total))
      fail(fmt::format("non-finite loss ({}) at epoch {}, step {} of {}; {}", std::isnan(total) ? NAN : total, epoch,
                       k + 1, steps, non_finite_loss_cause("train")));
    sums.total += total;
    sums.task += values[at + 1];
    if (n > 2) sums.mix += values[at + 2];
    if (n > 3) sums.sal += values[at + 3];
    at += size_t(n);
  }
  sums.step_values.clear();
}

void Trainer::keep_best(int64_t epoch, double valid_loss) {
  best_valid_loss_ = valid_loss;
  best_epoch_ = epoch;
  best_state_.clear();
  for (const auto& [name, t] : model_->state_dict()) {
    Tensor copy = Tensor::empty(t.shape(), t.device());
    copy.copy_(t);
    best_state_[name] = copy;
  }
  if (!run_dir_.empty())
    save_module(*model_, RunDir(run_dir_).file(kBestWeightsFile),
                {{"model", config_string(config_, "model")}, {"epoch", std::to_string(epoch)},
                 {"valid_loss", fmt::format("{}", valid_loss)}});
}

TrainResult Trainer::fit() {
  const auto run_start = std::chrono::steady_clock::now();
  RunDir dir(run_dir_.empty() ? "." : run_dir_);
  const bool writing = !run_dir_.empty();
  if (writing && !resumed_) {
    dir.create();
    for (const char* f : {kLogFile, kResultsFile, kBestWeightsFile, kLastCheckpointFile, kStateFile})
      fs::remove(dir.file(f));
    Json config = Json::parse(config_.dump());
    config["msmix_version"] = version_stamp();
    dir.write_json(kConfigFile, config);
    dir.write_log({});
  }
  if (writing && resumed_) fs::remove(dir.file(kResultsFile));

  const int64_t max_epochs = config_int(config_, "max_epochs"), early_stop = config_int(config_, "early_stop");
  const int64_t batch_size = config_int(config_, "batch_size"), n = data_.train.size();
  const bool checkpoint = config_bool(config_, "checkpoint");
  // BatchNorm cannot normalise one sample: a last training batch of one is dropped (MMSA would fail).
  const bool shuffle = config_bool_or(config_, "shuffle", true);  // absent in configs written before it
  Loader loader(data_.train, batch_size, shuffle, uint64_t(config_int(config_, "seed")),
                /*drop_last=*/n % batch_size == 1 && n > 1, device_);
  const int64_t steps = loader.batches_per_epoch();
  const bool mixing = mixer_->config.method != MixMethod::None;

  TrainResult result;
  result.status = "finished";
  result.stop_reason = "max_epochs";
  for (int64_t epoch = epochs_done_ + 1; epoch <= max_epochs; ++epoch) {
    if (epochs_done_ > 0 && epochs_done_ - best_epoch_ >= early_stop) {  // a resumed run that had stopped
      result.stop_reason = "early_stop";
      break;
    }
    const auto epoch_start = std::chrono::steady_clock::now();
    model_->train();
    mixer_->train();
    loader.start_epoch(epoch - 1);
    if (epoch_schedule_) epoch_schedule_->start_epoch(epoch);
    left_in_group_ = config_int_or(config_, "update_epochs", 1);  // MMSA restarts the count each epoch
    EpochSums sums;
    Batch batch;
    for (int64_t step = 1; loader.next(batch); ++step) {
      Tensor loss = train_step(batch, sums);
      if (on_step) on_step({epoch, max_epochs, step, steps, batch.size(), loss});
      if (stop_requested()) break;
    }
    read_epoch_sums(sums, epoch, steps);  // also after Ctrl-C: a non-finite loss before it is still reported
    if (stop_requested()) {
      result.status = result.stop_reason = "interrupted";
      break;
    }
    std::vector<float> lrs;
    for (size_t g = 0; g < optimizer_->num_groups(); ++g) lrs.push_back(optimizer_->lr(g));

    Evaluation valid = score("valid", fmt::format("at the end of epoch {}", epoch));
    if (!std::isfinite(valid.loss))
      fail(fmt::format("non-finite validation loss at the end of epoch {}; {}", epoch, non_finite_loss_cause("valid")));
    if (scheduler_) scheduler_->step(valid.loss);
    if (valid.loss <= best_valid_loss_ - kImprovement) keep_best(epoch, valid.loss);
    epochs_done_ = epoch;

    Json line = {{"epoch", epoch}, {"train_loss", sums.total / double(sums.steps)},
                 {"train_task_loss", sums.task / double(sums.steps)}};
    if (mixing) line["train_mix_loss"] = sums.mix / double(sums.steps);
    if (mixer_->config.method == MixMethod::MSMix) line["train_sal_loss"] = sums.sal / double(sums.steps);
    if (mixing && sums.mixing.steps() > 0) line["mix"] = sums.mixing.summary();
    line["valid_loss"] = valid.loss;
    line["valid"] = metrics_json(valid.metrics);
    line["lr"] = Json::object();
    for (size_t g = 0; g < lrs.size(); ++g) line["lr"][group_names_[g]] = shortest_double(lrs[g]);
    line["best_epoch"] = best_epoch_;
    line["seconds"] = std::round(seconds_since(epoch_start) * 1000) / 1000;
    log_.push_back(line);
    if (writing) {
      dir.write_log(log_);
      if (checkpoint) save_resume_point(epoch);
    }
    if (on_epoch) on_epoch(line);
    if (epoch - best_epoch_ >= early_stop) {
      result.stop_reason = "early_stop";
      break;
    }
  }

  result.epochs = epochs_done_;
  result.best_epoch = best_epoch_;
  result.best_valid_loss = best_valid_loss_;
  result.log = log_;
  Json r = {{"status", result.status},
            {"model", config_string(config_, "model")},
            {"dataset", config_string(config_, "dataset")},
            {"data", config_string(config_, "data")},
            {"mix", config_string(config_, "mix")},
            {"seed", config_int(config_, "seed")},
            {"device", device_.str()},
            {"stop_reason", result.stop_reason},
            {"epochs", epochs_done_},
            {"best_epoch", best_epoch_},
            {"best_valid_loss", json_double(best_valid_loss_)}};
  if (result.status == "interrupted") {
    r["resume"] = writing ? fmt::format("msmix train --resume {}", run_dir_) : std::string("(no run directory)");
  } else {
    MSMIX_CHECK(!best_state_.empty(), "train: no epoch finished (max_epochs {}), nothing to test", max_epochs);
    model_->load_state_dict(best_state_);
    Evaluation test = score("test", fmt::format("with the best weights (epoch {})", best_epoch_));
    result.test = test.metrics;
    r["valid"] = best_epoch_ >= 1 ? log_[size_t(best_epoch_ - 1)]["valid"] : Json();
    r["test_loss"] = json_double(test.loss);
    r["test"] = metrics_json(test.metrics);
  }
  if (!graph_status().empty()) r["cuda_graph"] = graph_status();
  double train_seconds = 0;
  for (const Json& line : log_) train_seconds += line["seconds"].get<double>();
  r["train_seconds"] = std::round(train_seconds * 1000) / 1000;
  r["seconds_this_session"] = std::round(seconds_since(run_start) * 1000) / 1000;
  result.results = r;
  if (writing) dir.write_json(kResultsFile, r);
  return result;
}

}  // namespace msmix
