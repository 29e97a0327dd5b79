#include "data/synthetic.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "engine/random.h"

namespace msmix {

namespace {

// MMSA's dims (docs/data.md): text L x D, audio T x D, vision T x D, label bound.
struct Layout {
  const char* name;
  int64_t text_steps, text_dim, audio_steps, audio_dim, vision_steps, vision_dim;
  float bound;
  bool aligned, sims;
};

const Layout kLayouts[] = {
    {"mosi", 50, 768, 375, 5, 500, 20, 3.0f, false, false},
    {"mosei", 50, 768, 500, 74, 500, 35, 3.0f, false, false},
    {"sims", 39, 768, 400, 33, 55, 709, 1.0f, false, true},
    {"mosi-aligned", 50, 768, 50, 5, 50, 20, 3.0f, true, false},
    {"mosei-aligned", 50, 768, 50, 74, 50, 35, 3.0f, true, false},
};

// Each split draws from its own region of the seed's Philox stream, so its samples don't depend on the
// other splits' sizes. Region 0 holds the fixed "world" (signal dims and directions).
constexpr uint64_t kRegion = uint64_t(1) << 40;

// The Philox key: the seed mixed with the dataset's name (FNV-1a), so "mosi" and "mosei" under one seed
// don't share their latents.
uint64_t philox_key(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return seed ^ h;
}

ModalitySignal make_signal(Generator& gen, int64_t dim, float strength) {
  ModalitySignal s;
  s.strength = strength;
  int64_t k = std::min<int64_t>(8, std::max<int64_t>(1, dim / 4));
  std::vector<int64_t> all(static_cast<size_t>(dim));
  for (int64_t d = 0; d < dim; ++d) all[d] = d;
  for (int64_t i = 0; i < k; ++i) std::swap(all[i], all[i + int64_t(gen.randint(uint64_t(dim - i)))]);
  s.dims.assign(all.begin(), all.begin() + k);
  double norm = 0;
  for (int64_t i = 0; i < k; ++i) {
    float v = gen.normal();
    s.direction.push_back(v);
    norm += double(v) * v;
  }
  for (float& v : s.direction) v = float(v / std::sqrt(norm));
  return s;
}

// One modality's features [N, T, D]: per valid step strength * carried[n] / sd_z * dir + offset + noise,
// zeros on the padding (at the end, or at the start with pad_left).
Tensor make_features(Generator& gen, const ModalitySignal& sig, const std::vector<float>& carried, float sd_z,
                     const std::vector<int64_t>& lengths, int64_t T, int64_t D, const SyntheticOptions& o) {
  const int64_t N = int64_t(carried.size());
  Tensor x = Tensor::randn({N, T, D}, gen, 0, o.step_noise);
  Tensor offsets = Tensor::randn({N, D}, gen, 0, o.sample_noise);
  float* p = x.data();
  const float* off = offsets.data();
  for (int64_t n = 0; n < N; ++n) {
    int64_t first = o.pad_left ? T - lengths[n] : 0, last = first + lengths[n];  // valid steps [first, last)
    float amplitude = sig.strength * carried[n] / sd_z;
    for (int64_t t = 0; t < T; ++t) {
      float* row = p + (n * T + t) * D;
      if (t < first || t >= last) {
        std::fill(row, row + D, 0.0f);
        continue;
      }
      for (int64_t d = 0; d < D; ++d) row[d] += off[n * D + d];
      for (size_t i = 0; i < sig.dims.size(); ++i) row[sig.dims[i]] += amplitude * sig.direction[i];
    }
  }
  return x;
}

// BERT-style inputs [N, 3, L]: [CLS] words... [SEP] then 0 padding (always at the end, as BERT pads);
// one word per sample is a "sentiment word" whose id encodes z rounded to one of 7 levels.
Tensor make_text_bert(Generator& gen, const std::vector<float>& latent, float bound,
                      const std::vector<int64_t>& lengths, int64_t L) {
  const int64_t N = int64_t(latent.size());
  Tensor out = Tensor::zeros({N, 3, L});
  float* p = out.data();
  for (int64_t n = 0; n < N; ++n) {
    float* ids = p + n * 3 * L;
    float* mask = ids + L;
    int64_t len = lengths[n];
    for (int64_t t = 0; t < len; ++t) ids[t] = float(3000 + gen.randint(1000)), mask[t] = 1;
    ids[0] = 101;                      // [CLS]
    if (len >= 2) ids[len - 1] = 102;  // [SEP]
    if (len >= 3) {
      int64_t level = std::lround(std::clamp(latent[n] / bound, -1.0f, 1.0f) * 3) + 3;  // 0..6
      ids[1 + int64_t(gen.randint(uint64_t(len - 2)))] = float(2000 + level);
    }
  }
  return out;
}

std::vector<int64_t> draw_lengths(Generator& gen, int64_t N, int64_t T, float min_fraction) {
  int64_t lo = std::clamp<int64_t>(int64_t(std::ceil(double(min_fraction) * double(T))), 1, T);
  std::vector<int64_t> lengths(static_cast<size_t>(N));
  for (auto& len : lengths) len = lo + int64_t(gen.randint(uint64_t(T - lo + 1)));
  return lengths;
}

Tensor vector_tensor(const std::vector<float>& v) { return Tensor::from_vector(v, {int64_t(v.size())}); }

// Fills one split; returns mean |label - clip(z)| over its samples (the Bayes-optimal MAE).
double make_split(Split& split, const std::string& dataset, int64_t N, uint64_t key, uint64_t region,
                  const Layout& lay, const SyntheticDataset& world, const SyntheticOptions& o) {
  Generator gen(key);
  gen.offset = region * kRegion;
  const float bound = lay.bound, sd_z = bound / 2;
  auto clip = [&](float v) { return std::clamp(v, -bound, bound); };
  auto steps = [&](int64_t T) { return o.max_steps > 0 ? std::min(T, o.max_steps) : T; };
  const int64_t Lt = steps(lay.text_steps), Ta = steps(lay.audio_steps), Tv = steps(lay.vision_steps);

  // Per-sample scalars, in one fixed order.
  const size_t count = static_cast<size_t>(N);
  std::vector<float> z(count), ct(count), ca(count), cv(count);
  std::vector<float> y(count), yt(count), ya(count), yv(count);
  double best_abs = 0;
  for (int64_t n = 0; n < N; ++n) {
    z[n] = sd_z * gen.normal();
    bool conflict = gen.uniform() < o.conflict_fraction;
    float dev = lay.sims ? o.unimodal_deviation * bound : 0.0f;
    ct[n] = z[n] + dev * gen.normal();
    ca[n] = (conflict ? -1 : 1) * (z[n] + dev * gen.normal());
    cv[n] = (conflict ? -1 : 1) * (z[n] + dev * gen.normal());
    float noise = o.label_noise * bound;
    y[n] = clip(z[n] + noise * gen.normal());
    yt[n] = clip(ct[n] + noise * gen.normal());
    ya[n] = clip(ca[n] + noise * gen.normal());
    yv[n] = clip(cv[n] + noise * gen.normal());
    best_abs += std::fabs(double(y[n]) - clip(z[n]));
  }
  std::vector<int64_t> len_t = draw_lengths(gen, N, Lt, o.min_length_fraction);
  std::vector<int64_t> len_a = lay.aligned ? len_t : draw_lengths(gen, N, Ta, o.min_length_fraction);
  std::vector<int64_t> len_v = lay.aligned ? len_t : draw_lengths(gen, N, Tv, o.min_length_fraction);

  split.text = make_features(gen, world.text, ct, sd_z, len_t, Lt, lay.text_dim, o);
  split.audio = make_features(gen, world.audio, ca, sd_z, len_a, Ta, lay.audio_dim, o);
  split.vision = make_features(gen, world.vision, cv, sd_z, len_v, Tv, lay.vision_dim, o);
  if (o.with_text_bert) split.text_bert = make_text_bert(gen, ct, bound, len_t, Lt);
  if (!lay.aligned) split.audio_lengths = len_a, split.vision_lengths = len_v;  // as MMSA: aligned files have none
  split.labels = vector_tensor(y);
  if (lay.sims)
    split.labels_t = vector_tensor(yt), split.labels_a = vector_tensor(ya), split.labels_v = vector_tensor(yv);
  split.ids.clear();
  split.raw_text.clear();
  for (int64_t n = 0; n < N; ++n) {
    // "video$_$clip" as MMSA's ids, eight clips per video.
    split.ids.push_back(fmt::format("{}_{}_{:04d}$_${}", dataset, split.name, n / 8, n % 8));
    split.raw_text.push_back(fmt::format("synthetic {} sample {} sentiment {:+.2f}", split.name, n, z[n]));
  }
  return N > 0 ? best_abs / double(N) : 0.0;
}

}  // namespace

std::vector<std::string> synthetic_names() {
  std::vector<std::string> names;
  for (const Layout& l : kLayouts) names.push_back(l.name);
  return names;
}

SyntheticDataset make_synthetic(const std::string& name, uint64_t seed, const SyntheticOptions& o) {
  const Layout* lay = nullptr;
  for (const Layout& l : kLayouts)
    if (name == l.name) lay = &l;
  MSMIX_CHECK(lay != nullptr, "make_synthetic: unknown dataset '{}' (known: {})", name,
              fmt::join(synthetic_names(), ", "));
  MSMIX_CHECK(o.train >= 0 && o.valid >= 0 && o.test >= 0 && o.size_scale >= 0 && o.max_steps >= 0,
              "make_synthetic: sizes must be non-negative: train {} valid {} test {} scale {} max_steps {}", o.train,
              o.valid, o.test, o.size_scale, o.max_steps);
  MSMIX_CHECK(o.min_length_fraction >= 0 && o.min_length_fraction <= 1 && o.conflict_fraction >= 0 &&
                  o.conflict_fraction <= 1,
              "make_synthetic: min_length_fraction {} and conflict_fraction {} must lie in [0, 1]",
              o.min_length_fraction, o.conflict_fraction);

  SyntheticDataset out;
  const uint64_t key = philox_key(seed, name);
  Generator world(key);  // region 0
  out.text = make_signal(world, lay->text_dim, o.text_strength);
  out.audio = make_signal(world, lay->audio_dim, o.audio_strength);
  out.vision = make_signal(world, lay->vision_dim, o.vision_strength);
  out.label_noise_std = double(o.label_noise) * lay->bound;

  Dataset& ds = out.dataset;
  ds.name = name;
  auto count = [&](int64_t n) { return int64_t(std::llround(double(n) * o.size_scale)); };
  make_split(ds.train, name, count(o.train), key, 1, *lay, out, o);
  make_split(ds.valid, name, count(o.valid), key, 2, *lay, out, o);
  out.best_test_mae = make_split(ds.test, name, count(o.test), key, 3, *lay, out, o);
  ds.source = fmt::format("synthetic seed {}, best achievable test MAE {:.4f}", seed, out.best_test_mae);
  return out;
}

}  // namespace msmix
