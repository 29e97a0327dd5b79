#include "data/dataset.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>

#include "data/pickle.h"
#include "engine/error.h"
#include "ops/ops.h"

namespace msmix {

namespace {

const char* kLabelKeys[] = {"regression_labels", "regression_labels_T", "regression_labels_A",
                            "regression_labels_V"};

bool is_label_key(const std::string& key) {
  for (const char* k : kLabelKeys)
    if (key == k) return true;
  return false;
}

std::string where(const std::string& dataset, const std::string& split) {
  return dataset.empty() ? fmt::format("split '{}'", split) : fmt::format("dataset '{}' split '{}'", dataset, split);
}

// Appends to `problems` everything wrong with one split (empty when it is fine).
void collect_problems(const Split& s, std::vector<std::string>& problems) {
  auto add = [&](std::string p) { problems.push_back(std::move(p)); };
  if (!s.labels.defined()) {
    add("regression_labels is missing");
    return;
  }
  if (s.labels.dim() != 1) add(fmt::format("regression_labels must be [N], got {}", describe(s.labels)));
  const int64_t n = s.size();

  if (!s.text.defined()) add("text is missing");
  if (!s.audio.defined()) add("audio is missing");
  if (!s.vision.defined()) add("vision is missing");
  for (const auto& [key, t] : s.arrays()) {
    if (!t->device().is_cpu()) add(fmt::format("{} must be on the CPU, got {}", key, describe(*t)));
    bool label = is_label_key(key);
    if (label && t->dim() != 1) add(fmt::format("{} must be [N], got {}", key, describe(*t)));
    if (!label && t->dim() != 3) add(fmt::format("{} must be [N, T, D], got {}", key, describe(*t)));
    if (key == "text_bert" && t->dim() == 3 && t->size(1) != 3)
      add(fmt::format("text_bert must be [N, 3, L] (ids, mask, segments), got {}", describe(*t)));
    if (t->dim() >= 1 && t->size(0) != n)
      add(fmt::format("{} has {} samples, regression_labels has {}", key, t->size(0), n));
  }
  auto check_strings = [&](const char* key, const std::vector<std::string>& v) {
    if (!v.empty() && int64_t(v.size()) != n)
      add(fmt::format("{} has {} entries, regression_labels has {}", key, v.size(), n));
  };
  check_strings("id", s.ids);
  check_strings("raw_text", s.raw_text);

  auto check_lengths = [&](const char* key, const std::vector<int64_t>& lengths, const Tensor& x) {
    if (lengths.empty()) return;
    if (int64_t(lengths.size()) != n) {
      add(fmt::format("{} has {} entries, regression_labels has {}", key, lengths.size(), n));
      return;
    }
    if (!x.defined() || x.dim() != 3) return;
    int64_t steps = x.size(1), bad = 0, first = -1;
    for (int64_t i = 0; i < n; ++i)
      if (lengths[i] < 0 || lengths[i] > steps) bad++, first = first < 0 ? i : first;
    if (bad > 0)
      add(fmt::format("{} has {} values outside [0, {}] (the time steps), first at row {}: {}", key, bad, steps,
                      first, lengths[first]));
  };
  check_lengths("audio_lengths", s.audio_lengths, s.audio);
  check_lengths("vision_lengths", s.vision_lengths, s.vision);

  for (const auto& [key, t] : s.arrays()) {
    if (!is_label_key(key) || !t->device().is_cpu()) continue;
    const float* p = t->data();
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < t->numel(); ++i)
      if (!std::isfinite(p[i])) bad++, first = first < 0 ? i : first;
    if (bad > 0)
      add(fmt::format("{} has {} non-finite values of {}, first at row {}: {}", key, bad, t->numel(), first,
                      p[first]));
  }
}

void throw_problems(const std::string& context, const std::vector<std::string>& problems) {
  if (problems.empty()) return;
  std::string message = context + " is invalid: " + problems[0];
  for (size_t i = 1; i < problems.size(); ++i) message += "; " + problems[i];
  throw Error(message);
}

std::string format_lengths(const std::vector<int64_t>& lengths) {
  if (lengths.empty()) return "";
  int64_t lo = *std::min_element(lengths.begin(), lengths.end());
  int64_t hi = *std::max_element(lengths.begin(), lengths.end());
  double mean = 0;
  for (int64_t v : lengths) mean += double(v);
  return fmt::format("  lengths {}..{} mean {:.1f}", lo, hi, mean / double(lengths.size()));
}

}  // namespace

// ---------------------------------------------------------------- Split

int64_t Split::size() const { return labels.defined() && labels.dim() >= 1 ? labels.size(0) : 0; }

std::vector<std::pair<std::string, const Tensor*>> Split::arrays() const {
  std::vector<std::pair<std::string, const Tensor*>> out;
  auto add = [&](const char* key, const Tensor& t) {
    if (t.defined()) out.emplace_back(key, &t);
  };
  add("text", text);
  add("text_bert", text_bert);
  add("audio", audio);
  add("vision", vision);
  add("regression_labels", labels);
  add("regression_labels_T", labels_t);
  add("regression_labels_A", labels_a);
  add("regression_labels_V", labels_v);
  return out;
}

void Split::validate(const std::string& dataset) const {
  std::vector<std::string> problems;
  collect_problems(*this, problems);
  throw_problems(where(dataset, name), problems);
}

// ---------------------------------------------------------------- Dataset

Dataset::Dataset() {
  train.name = "train";
  valid.name = "valid";
  test.name = "test";
}

Split& Dataset::split(const std::string& which) {
  return const_cast<Split&>(static_cast<const Dataset&>(*this).split(which));
}

const Split& Dataset::split(const std::string& which) const {
  if (which == "train") return train;
  if (which == "valid") return valid;
  if (which == "test") return test;
  throw Error(fmt::format("dataset '{}': no split '{}' (train, valid, test)", name, which));
}

void Dataset::validate() const {
  std::vector<std::string> problems;
  for (const Split* s : {&train, &valid, &test}) {
    std::vector<std::string> mine;
    collect_problems(*s, mine);
    for (auto& p : mine) problems.push_back(fmt::format("split '{}': {}", s->name, p));
  }
  // A model is built from the train split's dims: the others must match them.
  auto train_arrays = train.arrays();
  for (const Split* s : {&valid, &test}) {
    auto others = s->arrays();
    for (const auto& train_array : train_arrays) {
      const std::string& key = train_array.first;  // a named variable, not a binding: lambdas capture it in C++17
      const Tensor* t = train_array.second;
      auto it = std::find_if(others.begin(), others.end(), [&](const auto& kv) { return kv.first == key; });
      if (it == others.end()) {
        problems.push_back(fmt::format("split '{}' lacks {}, which train has", s->name, key));
      } else if (t->dim() == 3 && it->second->dim() == 3 && t->size(2) != it->second->size(2)) {
        problems.push_back(fmt::format("{} feature dims differ: train {} vs {} {}", key, describe(*t), s->name,
                                       describe(*it->second)));
      }
    }
  }
  throw_problems(fmt::format("dataset '{}'", name), problems);
}

std::string Dataset::summary() const {
  std::string out = fmt::format("dataset {}{}: train {}, valid {}, test {}\n", name,
                                source.empty() ? "" : " (" + source + ")", train.size(), valid.size(), test.size());
  for (const Split* s : {&train, &valid, &test}) {
    out += fmt::format("{}: {} samples\n", s->name, s->size());
    for (const auto& [key, t] : s->arrays()) {
      std::string line = fmt::format("  {:<20} {:<18}", key, shape_str(t->shape()));
      if (!t->device().is_cpu()) {
        out += line + " (not on the CPU)\n";
        continue;
      }
      if (is_label_key(key)) {
        LabelStats st = label_stats(*t);
        line += fmt::format(" mean {:.3f} std {:.3f} min {:.3f} max {:.3f} zeros {:.1f}%", st.mean, st.std, st.min,
                            st.max, 100 * st.zero_share);
      } else if (key != "text_bert") {
        PaddingReport pad = detect_padding(*t);
        line += fmt::format(" padding {} (left {}, right {})", pad.side, pad.left, pad.right);
      }
      line += fmt::format("  non-finite {}", count_non_finite(*t));
      if (key == "audio") line += format_lengths(s->audio_lengths);
      if (key == "vision") line += format_lengths(s->vision_lengths);
      out += line + "\n";
    }
    if (!s->ids.empty() || !s->raw_text.empty())
      out += fmt::format("  {:<20} {} / {} strings\n", "id / raw_text", s->ids.size(), s->raw_text.size());
  }
  return out;
}

// ---------------------------------------------------------------- statistics

LabelStats label_stats(const Tensor& labels) {
  MSMIX_CHECK(labels.defined() && labels.device().is_cpu(), "label_stats: needs a CPU tensor, got {}",
              labels.defined() ? describe(labels) : "undefined");
  LabelStats st;
  st.count = labels.numel();
  const float* p = labels.data();
  double sum = 0, sum_sq = 0;
  int64_t finite = 0, zeros = 0;
  st.min = INFINITY, st.max = -INFINITY;
  for (int64_t i = 0; i < st.count; ++i) {
    if (!std::isfinite(p[i])) {
      st.non_finite++;
      continue;
    }
    double v = p[i];
    finite++, sum += v, sum_sq += v * v, zeros += v == 0;
    st.min = std::min(st.min, v), st.max = std::max(st.max, v);
  }
  if (finite == 0) {
    st.min = st.max = 0;
    return st;
  }
  st.mean = sum / double(finite);
  st.std = std::sqrt(std::max(0.0, sum_sq / double(finite) - st.mean * st.mean));
  st.zero_share = double(zeros) / double(finite);
  return st;
}

namespace {
int64_t count_non_finite(const float* p, int64_t n) {
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i) bad += !std::isfinite(p[i]);
  return bad;
}
}  // namespace

int64_t count_non_finite(const Tensor& x) {
  MSMIX_CHECK(x.defined() && x.device().is_cpu(), "count_non_finite: needs a CPU tensor");
  return count_non_finite(x.data(), x.numel());
}

std::string non_finite_inputs(const Split& split, int64_t row) {
  std::vector<std::string> found;
  for (const auto& [key, array] : {std::pair{"text", &split.text}, {"audio", &split.audio}, {"vision", &split.vision}}) {
    if (!array->defined()) continue;
    const int64_t per_row = array->numel() / std::max<int64_t>(1, array->size(0));
    const int64_t n = row < 0 ? count_non_finite(*array) : count_non_finite(array->data() + row * per_row, per_row);
    if (n > 0) found.push_back(fmt::format("{} {}", key, n));
  }
  return fmt::format("{}", fmt::join(found, ", "));
}

PaddingReport detect_padding(const Tensor& x) {
  MSMIX_CHECK(x.defined() && x.dim() == 3 && x.device().is_cpu(),
              "detect_padding: needs a CPU tensor [N, T, D], got {}", x.defined() ? describe(x) : "undefined");
  const int64_t N = x.size(0), T = x.size(1), D = x.size(2);
  const float* p = x.data();
  auto zero_step = [&](int64_t n, int64_t t) {
    const float* row = p + (n * T + t) * D;
    for (int64_t d = 0; d < D; ++d)
      if (row[d] != 0) return false;
    return true;
  };
  PaddingReport r;
  for (int64_t n = 0; n < N; ++n) {
    int64_t lead = 0, trail = 0;
    while (lead < T && zero_step(n, lead)) lead++;
    if (lead == T) continue;  // all zero: no evidence either way
    while (trail < T && zero_step(n, T - 1 - trail)) trail++;
    if (trail > 0 && lead == 0) r.right++;
    if (lead > 0 && trail == 0) r.left++;
  }
  r.side = r.left == 0 && r.right == 0 ? "none" : r.right > r.left ? "right" : r.left > r.right ? "left" : "mixed";
  return r;
}

// ---------------------------------------------------------------- MMSA pickles

namespace {

std::string file_stem(const std::string& path) {
  size_t slash = path.find_last_of('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  size_t dot = base.find_last_of('.');
  return dot == std::string::npos || dot == 0 ? base : base.substr(0, dot);
}

// One split's dict -> Split. Required keys: text, audio, vision, regression_labels; the rest are optional,
// and keys msmix does not use (annotations, classification_labels, ...) are ignored.
Split split_from_pickle(const Value& dict, const std::string& name, const std::string& file) {
  const std::string where = fmt::format("split '{}' of {}", name, file);
  auto key = [&](const char* k) { return name + "/" + k; };
  Split s;
  s.name = name;
  s.text = dict.at("text", where).to_tensor(key("text"));
  s.audio = dict.at("audio", where).to_tensor(key("audio"));
  s.vision = dict.at("vision", where).to_tensor(key("vision"));
  s.labels = dict.at("regression_labels", where).to_tensor(key("regression_labels"));
  if (dict.has("text_bert")) s.text_bert = dict.at("text_bert").to_tensor(key("text_bert"));
  if (dict.has("id")) s.ids = dict.at("id").to_strings(key("id"));
  if (dict.has("raw_text")) s.raw_text = dict.at("raw_text").to_strings(key("raw_text"));
  if (dict.has("audio_lengths")) s.audio_lengths = dict.at("audio_lengths").to_int64s(key("audio_lengths"));
  if (dict.has("vision_lengths")) s.vision_lengths = dict.at("vision_lengths").to_int64s(key("vision_lengths"));
  Tensor* unimodal[] = {&s.labels_t, &s.labels_a, &s.labels_v};
  const char* unimodal_keys[] = {"regression_labels_T", "regression_labels_A", "regression_labels_V"};
  for (int m = 0; m < 3; ++m)
    if (dict.has(unimodal_keys[m])) *unimodal[m] = dict.at(unimodal_keys[m]).to_tensor(key(unimodal_keys[m]));
  // Labels are (N,) in MMSA's files; accept (N, 1) as well.
  for (Tensor* y : {&s.labels, &s.labels_t, &s.labels_a, &s.labels_v})
    if (y->defined() && y->dim() == 2 && y->size(1) == 1) *y = reshape(*y, {y->size(0)});
  return s;
}

}  // namespace

Dataset dataset_from_pickle(const Value& root, const std::string& name, const std::string& source) {
  Dataset ds;
  ds.name = name;
  ds.source = source;
  const std::string file = source.empty() ? name : source;
  MSMIX_CHECK(root.is(Kind::dict), "MMSA file {}: expected a dict of splits (train, valid, test), got {}", file,
              root.describe());
  for (Split* s : {&ds.train, &ds.valid, &ds.test})
    *s = split_from_pickle(root.at(s->name, "MMSA file " + file), s->name, file);
  ds.validate();
  return ds;
}

Dataset load_mmsa(const std::string& path, const std::string& name) {
  return dataset_from_pickle(load_pickle_file(path), name.empty() ? file_stem(path) : name, path);
}

// ---------------------------------------------------------------- MMSA loader behaviour

int64_t zero_negative_infinity(Tensor& x) {
  MSMIX_CHECK(x.defined() && x.device().is_cpu(), "zero_negative_infinity: needs a CPU tensor, got {}",
              x.defined() ? describe(x) : "undefined");
  float* p = x.data();
  int64_t replaced = 0;
  for (int64_t i = 0; i < x.numel(); ++i)
    if (p[i] == -INFINITY) p[i] = 0, replaced++;
  return replaced;
}

Tensor average_over_time(const Tensor& x) {
  MSMIX_CHECK(x.defined() && x.dim() == 3 && x.device().is_cpu(),
              "average_over_time: needs a CPU tensor [N, T, D], got {}", x.defined() ? describe(x) : "undefined");
  const int64_t N = x.size(0), T = x.size(1), D = x.size(2);
  Tensor out = Tensor::zeros({N, 1, D});
  const float* in = x.data();
  float* o = out.data();
  std::vector<double> acc(static_cast<size_t>(D));
  for (int64_t n = 0; n < N; ++n) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t t = 0; t < T; ++t) {
      const float* row = in + (n * T + t) * D;
      for (int64_t d = 0; d < D; ++d) acc[d] += row[d];
    }
    for (int64_t d = 0; d < D; ++d) {
      float mean = T > 0 ? float(acc[d] / double(T)) : NAN;  // numpy: the mean of nothing is NaN
      o[n * D + d] = std::isnan(mean) ? 0.0f : mean;
    }
  }
  return out;
}

void prepare_like_mmsa(Dataset& dataset, bool need_normalized) {
  for (Split* s : {&dataset.train, &dataset.valid, &dataset.test}) {
    if (s->audio.defined()) zero_negative_infinity(s->audio);
    if (!need_normalized) continue;
    if (s->audio.defined()) s->audio = average_over_time(s->audio);
    if (s->vision.defined()) s->vision = average_over_time(s->vision);
    std::fill(s->audio_lengths.begin(), s->audio_lengths.end(), 1);
    std::fill(s->vision_lengths.begin(), s->vision_lengths.end(), 1);
  }
}

}  // namespace msmix
