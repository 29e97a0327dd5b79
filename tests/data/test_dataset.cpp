// Dataset checks (validate, summary statistics, padding side, MMSA's loader behaviour) on hand-made
// splits, reading MMSA pickles (hand-built Value trees and the real MOSI file when present), and the
// synthetic generator: shapes per name, reproducibility, label ranges, and that labels
// really are the documented function of the features.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "data/dataset.h"
#include "data/pickle.h"
#include "data/synthetic.h"
#include "tests/files.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

// A valid split of n samples: text [n, 4, 3], audio [n, 5, 2], vision [n, 6, 2], labels n.
Split tiny_split(const std::string& name, int64_t n) {
  Split s;
  s.name = name;
  Generator gen(7);
  s.text = Tensor::randn({n, 4, 3}, gen);
  s.audio = Tensor::randn({n, 5, 2}, gen);
  s.vision = Tensor::randn({n, 6, 2}, gen);
  s.labels = Tensor::rand({n}, gen, -3, 3);
  for (int64_t i = 0; i < n; ++i) {
    s.ids.push_back("v$_$" + std::to_string(i));
    s.audio_lengths.push_back(5);
    s.vision_lengths.push_back(1 + i % 6);
  }
  return s;
}

Dataset tiny_dataset() {
  Dataset ds;
  ds.name = "tiny";
  ds.train = tiny_split("train", 6);
  ds.valid = tiny_split("valid", 3);
  ds.test = tiny_split("test", 4);
  return ds;
}

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  double ma = 0, mb = 0;
  for (size_t i = 0; i < a.size(); ++i) ma += a[i], mb += b[i];
  ma /= double(a.size()), mb /= double(b.size());
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < a.size(); ++i)
    sab += (a[i] - ma) * (b[i] - mb), saa += (a[i] - ma) * (a[i] - ma), sbb += (b[i] - mb) * (b[i] - mb);
  return sab / std::sqrt(saa * sbb);
}

// Per sample: the features projected on the modality's signal direction, averaged over the valid steps
// (found as the non-zero steps, so it does not trust the lengths it is also testing).
std::vector<double> readout(const Tensor& x, const ModalitySignal& sig) {
  const int64_t N = x.size(0), T = x.size(1), D = x.size(2);
  const float* p = x.data();
  std::vector<double> out(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) {
    double sum = 0;
    int64_t valid = 0;
    for (int64_t t = 0; t < T; ++t) {
      const float* row = p + (n * T + t) * D;
      bool zero = true;
      for (int64_t d = 0; d < D; ++d) zero = zero && row[d] == 0;
      if (zero) continue;
      valid++;
      for (size_t i = 0; i < sig.dims.size(); ++i) sum += double(row[sig.dims[i]]) * sig.direction[i];
    }
    out[n] = valid > 0 ? sum / double(valid) : 0;
  }
  return out;
}

std::vector<double> as_doubles(const Tensor& t) {
  std::vector<float> v = t.to_vector();
  return std::vector<double>(v.begin(), v.end());
}

}  // namespace

// ---------------------------------------------------------------- validate

TEST_CASE("validate accepts a consistent dataset") {
  Dataset ds = tiny_dataset();
  ds.validate();
  ds.train.validate("tiny");
}

TEST_CASE("validate names split, key and counts when N disagrees") {
  Dataset ds = tiny_dataset();
  ds.train.audio = Tensor::zeros({5, 5, 2});
  check_throws_with([&] { ds.validate(); }, {"dataset 'tiny'", "split 'train'", "audio has 5 samples", "6"});
  check_throws_with([&] { ds.train.validate("tiny"); }, {"dataset 'tiny' split 'train'", "audio has 5 samples"});
  Dataset ds2 = tiny_dataset();
  ds2.valid.ids.pop_back();
  check_throws_with([&] { ds2.validate(); }, {"split 'valid'", "id has 2 entries", "regression_labels has 3"});
}

TEST_CASE("validate reports non-finite labels with their count and first row") {
  Dataset ds = tiny_dataset();
  ds.test.labels.data()[2] = NAN;
  ds.test.labels.data()[3] = INFINITY;
  check_throws_with([&] { ds.validate(); }, {"split 'test'", "regression_labels", "2 non-finite", "row 2"});
  Dataset sims = tiny_dataset();
  sims.train.labels_a = Tensor::zeros({6});
  sims.train.labels_a.data()[5] = NAN;
  check_throws_with([&] { sims.train.validate(); }, {"regression_labels_A", "1 non-finite", "row 5"});
}

TEST_CASE("validate checks ranks, lengths, and dims across splits, listing every problem") {
  Dataset ds = tiny_dataset();
  ds.train.vision_lengths[1] = 7;   // vision has 6 steps
  ds.train.text = Tensor::zeros({6, 12});  // not [N, T, D]
  check_throws_with([&] { ds.validate(); },
                    {"vision_lengths has 1 values outside [0, 6]", "row 1: 7", "text must be [N, T, D]"});
  Dataset ds2 = tiny_dataset();
  ds2.test.audio = Tensor::zeros({4, 5, 3});
  check_throws_with([&] { ds2.validate(); }, {"audio feature dims differ", "[6, 5, 2]", "test [4, 5, 3]"});
  Dataset ds3 = tiny_dataset();
  ds3.train.text_bert = Tensor::zeros({6, 2, 4});
  check_throws_with([&] { ds3.validate(); }, {"text_bert must be [N, 3, L]", "split 'valid' lacks text_bert"});
  Dataset ds4 = tiny_dataset();
  ds4.valid.labels = Tensor();
  check_throws_with([&] { ds4.validate(); }, {"split 'valid': regression_labels is missing"});
  check_throws_with([&] { ds4.split("dev"); }, {"no split 'dev'"});
}

// ---------------------------------------------------------------- statistics and padding

TEST_CASE("label_stats on hand-computed values") {
  Tensor y = Tensor::from_vector({0, 2, -1, 0, NAN, 3}, {6});
  LabelStats st = label_stats(y);
  CHECK(st.count == 6);
  CHECK(st.non_finite == 1);
  CHECK(st.mean == doctest::Approx(0.8));  // (0 + 2 - 1 + 0 + 3) / 5
  CHECK(st.std == doctest::Approx(std::sqrt((0.64 + 1.44 + 3.24 + 0.64 + 4.84) / 5)));
  CHECK(st.min == -1);
  CHECK(st.max == 3);
  CHECK(st.zero_share == doctest::Approx(0.4));
  CHECK(count_non_finite(Tensor::from_vector({1, -INFINITY, NAN, 0}, {4})) == 2);
}

TEST_CASE("padding side is read from where the all-zero steps sit") {
  // [3, 4, 2]; sample rows are given as "is this step non-zero".
  auto make = [](const std::vector<std::vector<int>>& nonzero) {
    Tensor x = Tensor::zeros({int64_t(nonzero.size()), 4, 2});
    for (size_t n = 0; n < nonzero.size(); ++n)
      for (int t = 0; t < 4; ++t)
        if (nonzero[n][t]) x.data()[(n * 4 + t) * 2 + 1] = 0.5f;  // one non-zero entry makes the step non-zero
    return x;
  };
  CHECK(detect_padding(make({{1, 1, 0, 0}, {1, 0, 0, 0}, {1, 1, 1, 1}})).side == "right");
  CHECK(detect_padding(make({{0, 0, 1, 1}, {0, 1, 1, 1}, {1, 1, 1, 1}})).side == "left");
  CHECK(detect_padding(make({{1, 1, 1, 1}, {1, 0, 1, 1}, {0, 0, 0, 0}})).side == "none");  // inner zeros, all-zero
  PaddingReport mixed = detect_padding(make({{0, 1, 1, 1}, {1, 1, 1, 0}, {0, 1, 1, 0}}));
  CHECK(mixed.side == "mixed");
  CHECK(mixed.left == 1);
  CHECK(mixed.right == 1);
  CHECK(detect_padding(make({{0, 1, 1, 1}, {1, 1, 0, 0}, {1, 1, 1, 0}})).side == "right");  // majority
  check_throws_with([] { detect_padding(Tensor::zeros({2, 3})); }, {"detect_padding", "[2, 3]"});
}

TEST_CASE("summary lists splits, shapes, label statistics and padding") {
  Dataset ds = tiny_dataset();
  ds.source = "hand-made";
  ds.train.labels = Tensor::from_vector({0, 1, 2, 0, -1, 4}, {6});
  std::string s = ds.summary();
  CAPTURE(s);
  for (const char* part : {"dataset tiny (hand-made): train 6, valid 3, test 4", "train: 6 samples", "[6, 5, 2]",
                           "regression_labels", "mean 1.000", "min -1.000", "max 4.000", "zeros 33.3%",
                           "padding none", "lengths 1..6", "non-finite 0"})
    CHECK_MESSAGE(s.find(part) != std::string::npos, "summary lacks '" << part << "'");
}

// ---------------------------------------------------------------- MMSA loader behaviour

TEST_CASE("zero_negative_infinity replaces -inf only") {
  Tensor a = Tensor::from_vector({1, -INFINITY, INFINITY, -2, -INFINITY}, {5});
  CHECK(zero_negative_infinity(a) == 2);
  std::vector<float> v = a.to_vector();
  CHECK(v[0] == 1);
  CHECK(v[1] == 0);
  CHECK(std::isinf(v[2]));
  CHECK(v[3] == -2);
  CHECK(v[4] == 0);
}

TEST_CASE("average_over_time: mean over every step, padding included, NaN -> 0") {
  // x [2, 3, 2]: sample 0 has a padded (zero) last step; sample 1 has a NaN in dim 1.
  Tensor x = Tensor::from_vector({1, 2, 3, 4, 0, 0,  //
                                  6, NAN, 0, 1, 3, 1},
                                 {2, 3, 2});
  Tensor m = average_over_time(x);
  REQUIRE(m.shape() == Shape{2, 1, 2});
  check_close(m.to_vector(), {4.0f / 3, 2, 3, 0});
  Tensor empty_time = average_over_time(Tensor::zeros({2, 0, 3}));  // numpy: mean of nothing is NaN -> 0
  check_close(empty_time.to_vector(), std::vector<float>(6, 0.0f));
  check_throws_with([] { average_over_time(Tensor::zeros({2, 3})); }, {"average_over_time", "[2, 3]"});
}

TEST_CASE("prepare_like_mmsa: audio -inf -> 0, averaged audio/vision for need_normalized backbones") {
  Dataset ds = tiny_dataset();
  ds.train.audio.data()[3] = -INFINITY;
  prepare_like_mmsa(ds, false);
  CHECK(ds.train.audio.data()[3] == 0);
  CHECK(ds.train.audio.shape() == Shape{6, 5, 2});
  prepare_like_mmsa(ds, true);
  CHECK(ds.train.audio.shape() == Shape{6, 1, 2});
  CHECK(ds.test.vision.shape() == Shape{4, 1, 2});
  CHECK(ds.train.text.shape() == Shape{6, 4, 3});  // text is never averaged
  CHECK(ds.valid.vision_lengths == std::vector<int64_t>(3, 1));
  ds.validate();
}

// ---------------------------------------------------------------- synthetic

TEST_CASE("synthetic datasets have MMSA's shapes for every name") {
  struct Want {
    const char* name;
    Shape text, audio, vision;
    bool lengths, sims;
  };
  const Want wants[] = {{"mosi", {50, 768}, {375, 5}, {500, 20}, true, false},
                        {"mosei", {50, 768}, {500, 74}, {500, 35}, true, false},
                        {"sims", {39, 768}, {400, 33}, {55, 709}, true, true},
                        {"mosi-aligned", {50, 768}, {50, 5}, {50, 20}, false, false},
                        {"mosei-aligned", {50, 768}, {50, 74}, {50, 35}, false, false}};
  SyntheticOptions o;
  o.train = 3, o.valid = 2, o.test = 1;
  for (const Want& w : wants) {
    CAPTURE(w.name);
    SyntheticDataset syn = make_synthetic(w.name, 1, o);
    const Dataset& ds = syn.dataset;
    ds.validate();
    CHECK(ds.name == w.name);
    CHECK(ds.train.size() == 3);
    CHECK(ds.valid.size() == 2);
    CHECK(ds.test.size() == 1);
    CHECK(ds.train.text.shape() == Shape{3, w.text[0], w.text[1]});
    CHECK(ds.train.audio.shape() == Shape{3, w.audio[0], w.audio[1]});
    CHECK(ds.valid.vision.shape() == Shape{2, w.vision[0], w.vision[1]});
    CHECK(ds.train.audio_lengths.size() == (w.lengths ? 3u : 0u));
    CHECK(ds.train.labels_t.defined() == w.sims);
    CHECK(ds.train.ids.size() == 3);
    CHECK(!ds.train.text_bert.defined());
  }
  check_throws_with([] { make_synthetic("iemocap", 1); }, {"unknown dataset 'iemocap'", "mosi", "mosei-aligned"});
}

TEST_CASE("synthetic options: max_steps, size_scale, text_bert, left padding") {
  SyntheticOptions o;
  o.train = 10, o.valid = 4, o.test = 6, o.size_scale = 0.5, o.max_steps = 7, o.with_text_bert = true;
  SyntheticDataset syn = make_synthetic("mosi", 3, o);
  const Split& tr = syn.dataset.train;
  CHECK(tr.size() == 5);
  CHECK(syn.dataset.valid.size() == 2);
  CHECK(tr.text.shape() == Shape{5, 7, 768});
  CHECK(tr.audio.shape() == Shape{5, 7, 5});
  REQUIRE(tr.text_bert.shape() == Shape{5, 3, 7});
  const float* tb = tr.text_bert.data();
  for (int64_t n = 0; n < 5; ++n) {
    CHECK(tb[n * 21] == 101);  // [CLS]
    double mask = 0;
    for (int t = 0; t < 7; ++t) mask += tb[n * 21 + 7 + t];
    CHECK(mask >= 1);
  }
  syn.dataset.validate();

  SyntheticOptions full;
  full.train = 40, full.valid = 1, full.test = 1;
  CHECK(detect_padding(make_synthetic("mosi", 3, full).dataset.train.audio).side == "right");
  full.pad_left = true;
  Dataset left = make_synthetic("mosi", 3, full).dataset;
  CHECK(detect_padding(left.train.audio).side == "left");
  CHECK(detect_padding(left.train.vision).side == "left");
  // The lengths agree with the zero steps: sample 0's first T - len audio steps are zero, the next is not.
  int64_t len = left.train.audio_lengths[0], T = left.train.audio.size(1);
  REQUIRE(len < T);
  CHECK(left.train.audio.data()[(T - len - 1) * 5] == 0);
  CHECK(left.train.audio.data()[(T - len) * 5] != 0);
}

TEST_CASE("synthetic data is reproducible from the seed, and splits don't depend on each other's sizes") {
  SyntheticOptions o;
  o.train = 8, o.valid = 4, o.test = 5, o.max_steps = 6;
  SyntheticDataset a = make_synthetic("sims", 42, o), b = make_synthetic("sims", 42, o);
  SyntheticDataset c = make_synthetic("sims", 43, o);
  for (const char* split : {"train", "valid", "test"}) {
    CAPTURE(split);
    const Split &sa = a.dataset.split(split), &sb = b.dataset.split(split), &sc = c.dataset.split(split);
    CHECK(sa.text.to_vector() == sb.text.to_vector());
    CHECK(sa.audio.to_vector() == sb.audio.to_vector());
    CHECK(sa.vision.to_vector() == sb.vision.to_vector());
    CHECK(sa.labels.to_vector() == sb.labels.to_vector());
    CHECK(sa.labels_v.to_vector() == sb.labels_v.to_vector());
    CHECK(sa.audio_lengths == sb.audio_lengths);
    CHECK(sa.text.to_vector() != sc.text.to_vector());
    CHECK(sa.labels.to_vector() != sc.labels.to_vector());
  }
  CHECK(a.best_test_mae == b.best_test_mae);
  o.train = 20;
  SyntheticDataset d = make_synthetic("sims", 42, o);
  CHECK(d.dataset.test.labels.to_vector() == a.dataset.test.labels.to_vector());
  CHECK(d.dataset.test.vision.to_vector() == a.dataset.test.vision.to_vector());
}

TEST_CASE("synthetic labels lie in the label range, with the spread of MMSA's labels") {
  SyntheticOptions o;
  o.train = 300, o.valid = 1, o.test = 1, o.max_steps = 2;
  for (const char* name : {"mosei", "sims"}) {
    CAPTURE(name);
    Dataset ds = make_synthetic(name, 5, o).dataset;
    double bound = std::string(name) == "sims" ? 1 : 3;
    for (const Tensor* y : {&ds.train.labels, &ds.train.labels_t, &ds.train.labels_a, &ds.train.labels_v}) {
      if (!y->defined()) continue;
      LabelStats st = label_stats(*y);
      CHECK(st.non_finite == 0);
      CHECK(st.min >= -bound);
      CHECK(st.max <= bound);
      CHECK(st.std > 0.35 * bound);  // sd of z is bound / 2; clipping and noise keep it near that
      CHECK(st.std < 0.65 * bound);
      CHECK(std::fabs(st.mean) < 0.15 * bound);
    }
  }
}

TEST_CASE("synthetic labels follow the text signal more closely than audio or vision") {
  SyntheticOptions o;
  o.train = 400, o.valid = 1, o.test = 1, o.max_steps = 20;
  SyntheticDataset syn = make_synthetic("mosi", 11, o);
  const Split& tr = syn.dataset.train;
  std::vector<double> y = as_doubles(tr.labels);
  double rt = pearson(readout(tr.text, syn.text), y);
  double ra = pearson(readout(tr.audio, syn.audio), y);
  double rv = pearson(readout(tr.vision, syn.vision), y);
  CAPTURE(rt);
  CAPTURE(ra);
  CAPTURE(rv);
  CHECK(rt > 0.9);
  CHECK(rt > ra + 0.1);
  CHECK(rt > rv + 0.1);
  CHECK(ra > 0.3);  // weaker, but there (conflicting samples flip about 15% of them)
  CHECK(rv > 0.3);
  // A distractor dim carries nothing.
  ModalitySignal distractor;
  for (int64_t d = 0; d < 768 && distractor.dims.empty(); ++d)
    if (std::find(syn.text.dims.begin(), syn.text.dims.end(), d) == syn.text.dims.end())
      distractor.dims.push_back(d), distractor.direction.push_back(1);
  CHECK(std::fabs(pearson(readout(tr.text, distractor), y)) < 0.2);
}

TEST_CASE("synthetic SIMS unimodal labels follow their own modality") {
  SyntheticOptions o;
  o.train = 400, o.valid = 1, o.test = 1, o.max_steps = 10;
  SyntheticDataset syn = make_synthetic("sims", 12, o);
  const Split& tr = syn.dataset.train;
  std::vector<double> ra = readout(tr.audio, syn.audio);
  // Audio's readout predicts the audio label (conflicts included) better than the multimodal label.
  CHECK(pearson(ra, as_doubles(tr.labels_a)) > pearson(ra, as_doubles(tr.labels)) + 0.1);
}

TEST_CASE("synthetic best achievable MAE is reported and small") {
  SyntheticOptions o;
  o.train = 1, o.valid = 1, o.test = 2000, o.max_steps = 1;
  SyntheticDataset syn = make_synthetic("mosi", 9, o);
  CHECK(syn.label_noise_std == doctest::Approx(0.3));
  // E|eps| = sd * sqrt(2 / pi); clipping at the bounds only shrinks it a little.
  double expected = 0.3 * std::sqrt(2 / M_PI);
  CHECK(syn.best_test_mae > 0.85 * expected);
  CHECK(syn.best_test_mae < 1.1 * expected);
  // Far below the MAE of always predicting 0 (about 1.2 here).
  LabelStats st = label_stats(syn.dataset.test.labels);
  std::vector<float> y = syn.dataset.test.labels.to_vector();
  double mae_zero = 0;
  for (float v : y) mae_zero += std::fabs(v);
  mae_zero /= double(y.size());
  CHECK(syn.best_test_mae < 0.3 * mae_zero);
  CHECK(st.count == 2000);
  CHECK(syn.dataset.source.find("best achievable test MAE") != std::string::npos);
}

// ---------------------------------------------------------------- MMSA pickles

namespace {

// A float64 numpy array Value (MMSA's feature tool writes float64; msmix reads float32).
Value f64_array(const std::vector<double>& values, const Shape& shape) {
  NdArray a;
  a.dtype = parse_dtype_code("<f8");
  a.shape = shape;
  a.bytes.resize(values.size() * sizeof(double));
  std::memcpy(a.bytes.data(), values.data(), a.bytes.size());
  return Value::array(a);
}

// One split dict as MMSA writes it: n samples, text [n, 2, 3], audio [n, 3, 2], vision [n, 1, 4].
Value split_value(int64_t n, bool with_extras) {
  Value s = Value::dict();
  Dict& d = s.mutable_dict();
  auto ramp = [](int64_t count, double scale) {
    std::vector<double> v(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) v[i] = double(i) * scale;
    return v;
  };
  d.set(Value::str("text"), f64_array(ramp(n * 6, 0.5), {n, 2, 3}));
  d.set(Value::str("audio"), f64_array(ramp(n * 6, -1), {n, 3, 2}));
  d.set(Value::str("vision"), f64_array(ramp(n * 4, 2), {n, 1, 4}));
  d.set(Value::str("regression_labels"), f64_array(ramp(n, 0.25), with_extras ? Shape{n, 1} : Shape{n}));
  std::vector<Value> ids, lengths;
  for (int64_t i = 0; i < n; ++i) ids.push_back(Value::str("vid$_$" + std::to_string(i)));
  for (int64_t i = 0; i < n; ++i) lengths.push_back(Value::integer(1 + i % 3));
  d.set(Value::str("id"), Value::list(ids));
  d.set(Value::str("audio_lengths"), Value::list(lengths));
  d.set(Value::str("annotations"), Value::list(ids));  // keys msmix does not use are ignored
  if (with_extras) d.set(Value::str("regression_labels_T"), f64_array(ramp(n, -0.1), {n}));
  return s;
}

Value file_value(bool with_extras) {
  Value root = Value::dict();
  root.mutable_dict().set(Value::str("train"), split_value(4, with_extras));
  root.mutable_dict().set(Value::str("valid"), split_value(2, with_extras));
  root.mutable_dict().set(Value::str("test"), split_value(3, with_extras));
  return root;
}

}  // namespace

TEST_CASE("dataset_from_pickle maps MMSA's keys onto a Dataset") {
  Dataset ds = dataset_from_pickle(file_value(true), "toy", "toy.pkl");
  CHECK(ds.name == "toy");
  CHECK(ds.source == "toy.pkl");
  const Split& tr = ds.train;
  REQUIRE(tr.text.shape() == Shape{4, 2, 3});
  CHECK(tr.audio.shape() == Shape{4, 3, 2});
  CHECK(ds.test.vision.shape() == Shape{3, 1, 4});
  CHECK(tr.labels.shape() == Shape{4});  // (N, 1) labels flattened
  check_close(tr.labels.to_vector(), {0, 0.25f, 0.5f, 0.75f});
  check_close(tr.labels_t.to_vector(), {0, -0.1f, -0.2f, -0.3f});
  CHECK(!tr.labels_a.defined());
  CHECK(tr.text.to_vector()[5] == 2.5f);
  CHECK(tr.ids[3] == "vid$_$3");
  CHECK(tr.audio_lengths == std::vector<int64_t>{1, 2, 3, 1});
  CHECK(tr.vision_lengths.empty());
  CHECK(tr.raw_text.empty());
}

TEST_CASE("dataset_from_pickle: missing keys, wrong layouts and invalid contents are named") {
  Value root = file_value(false);
  Value valid = split_value(2, false);
  Value broken = Value::dict();
  for (const auto& [k, v] : valid.as_dict().entries())
    if (k.as_str() != "audio") broken.mutable_dict().set(k, v);
  root.mutable_dict().set(Value::str("valid"), broken);
  check_throws_with([&] { dataset_from_pickle(root, "toy", "toy.pkl"); },
                    {"key 'audio' missing in split 'valid' of toy.pkl"});
  check_throws_with([] { dataset_from_pickle(Value::list(), "toy", "toy.pkl"); }, {"toy.pkl", "dict of splits"});
  Value mismatched = file_value(false);
  Value test = split_value(3, false);
  test.mutable_dict().set(Value::str("audio"), f64_array(std::vector<double>(12, 0), {2, 3, 2}));
  mismatched.mutable_dict().set(Value::str("test"), test);
  check_throws_with([&] { dataset_from_pickle(mismatched, "toy", "toy.pkl"); },
                    {"dataset 'toy'", "split 'test'", "audio has 2 samples"});
}

TEST_CASE("load_mmsa reads the real MOSI utterance features (../shared) when present") {
  const std::string path = shared_mosi_utterance();
  if (path.empty()) {
    MESSAGE(kMissingSharedData);
    return;
  }
  Dataset ds = load_mmsa(path);
  CHECK(ds.name == "mosi_utterance");
  CHECK(ds.train.size() == 1233);
  CHECK(ds.valid.size() == 214);
  CHECK(ds.test.size() == 752);
  CHECK(ds.train.text.shape() == Shape{1233, 1, 100});
  CHECK(ds.test.audio.shape() == Shape{752, 1, 73});
  CHECK(ds.valid.vision.shape() == Shape{214, 1, 100});
  CHECK(ds.train.ids.size() == 1233);
  CHECK(ds.train.ids[0].find("$_$") != std::string::npos);
  CHECK(ds.train.audio_lengths == std::vector<int64_t>(1233, 1));
  LabelStats st = label_stats(ds.test.labels);
  CHECK(st.min >= -3);
  CHECK(st.max <= 3);
  CHECK(st.std > 1);
  CHECK(detect_padding(ds.train.audio).side == "none");
}
