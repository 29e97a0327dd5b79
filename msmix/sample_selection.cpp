#include "msmix/sample_selection.h"

#include <cfloat>

#include "engine/autograd.h"
#include "engine/error.h"
#include "ops/cpu/pair_selection.h"
#include "ops/ops.h"

namespace msmix {

SampleSelector::SampleSelector(float delta_) : delta(delta_) {
  MSMIX_CHECK(delta_ == delta_, "SampleSelector: delta is NaN");
}

Tensor SampleSelector::cosine_similarity(const Representations& reps) {
  const Tensor* zs[3] = {&reps.t, &reps.a, &reps.v};
  for (const Tensor* z : zs)
    MSMIX_CHECK(z->defined() && z->dim() >= 2,
                "SampleSelector: each representation must be [B, d] or [B, T, d], got t {}, a {}, v {}",
                reps.t.defined() ? describe(reps.t) : "undefined", reps.a.defined() ? describe(reps.a) : "undefined",
                reps.v.defined() ? describe(reps.v) : "undefined");
  const int64_t B = reps.t.size(0);
  MSMIX_CHECK(B > 0 && reps.a.size(0) == B && reps.v.size(0) == B,
              "SampleSelector: batch sizes differ or are empty: t {}, a {}, v {}", describe(reps.t), describe(reps.a),
              describe(reps.v));
  NoGradGuard no_grad;  // selection is not differentiated
  Tensor total;
  for (const Tensor* z : zs) {
    Tensor flat = reshape(z->detach(), {B, -1});                                         // [B, D]
    Tensor norm = clamp(sqrt(sum(mul(flat, flat), {1}, true)), 1e-12f, FLT_MAX);          // [B, 1]
    Tensor unit = div(flat, norm);                                                        // unit rows
    Tensor s = matmul(unit, unit, false, true);                                           // [B, B]
    total = total.defined() ? add(total, s) : s;
  }
  return mul(total, 1.0f / 3.0f);
}

namespace {

std::vector<MixPair> as_pairs(const std::vector<int64_t>& positions, int64_t B) {
  std::vector<MixPair> out;
  for (int64_t p : positions) out.emplace_back(p / B, p % B);
  return out;
}

void check_square(const Tensor& m, const char* what) {
  MSMIX_CHECK(m.defined() && m.dim() == 2 && m.size(0) == m.size(1), "SampleSelector: {} must be square [B, B], got {}",
              what, m.defined() ? describe(m) : "undefined");
}

}  // namespace

SelectionStats selection_stats(const std::vector<float>& stats, int64_t B) {
  MSMIX_CHECK(stats.size() == size_t(cpu::kSelectionStats), "selection_stats: expected {} values, got {}",
              cpu::kSelectionStats, stats.size());
  SelectionStats s;
  s.needed = B;
  s.above_delta = int64_t(stats[0]);
  s.fallback = stats[1] != 0;
  s.pool = int64_t(stats[2]);
  s.pair_similarity = stats[3];
  return s;
}

std::vector<MixPair> host_pairs(const Tensor& index_i, const Tensor& index_j) {
  const std::vector<float> i = index_i.to_vector(), j = index_j.to_vector();
  MSMIX_CHECK(i.size() == j.size(), "host_pairs: {} and {} indices", i.size(), j.size());
  std::vector<MixPair> out;
  for (size_t k = 0; k < i.size(); ++k) out.emplace_back(int64_t(i[k]), int64_t(j[k]));
  return out;
}

Tensor SampleSelector::normalize_similarity(const Tensor& similarity) {
  check_square(similarity, "similarity");
  const int64_t B = similarity.size(0);
  std::vector<float> s = similarity.to_vector();
  cpu::normalize_similarity(s, B);
  return Tensor::from_vector(s, {B, B});
}

std::vector<MixPair> SampleSelector::candidates(const Tensor& normalized, SelectionStats* stats) const {
  check_square(normalized, "normalized similarity");
  const int64_t B = normalized.size(0);
  int64_t above = 0;
  const std::vector<MixPair> out = as_pairs(cpu::selection_candidates(normalized.to_vector(), B, delta, &above), B);
  if (stats) *stats = SelectionStats{B, above, above < B, int64_t(out.size()), 0.0};
  return out;
}

std::vector<MixPair> SampleSelector::select(const Tensor& normalized, Generator& gen, SelectionStats* stats) const {
  check_square(normalized, "normalized similarity");
  const int64_t B = normalized.size(0);
  const std::vector<float> s = normalized.to_vector();
  int64_t above = 0;
  const std::vector<int64_t> pool = cpu::selection_candidates(s, B, delta, &above);
  const std::vector<float> draws = selection_draw_values(B, gen);
  const std::vector<int64_t> chosen =
      pool.empty() ? std::vector<int64_t>(size_t(B), 0) : cpu::shuffle_candidates(pool, B, draws.data());
  if (stats) {
    double sum = 0;
    for (int64_t p : chosen) sum += s[size_t(p)];
    *stats = SelectionStats{B, above, above < B, int64_t(pool.size()), sum / double(B)};
  }
  return as_pairs(chosen, B);
}

SelectedPairs SampleSelector::select_on_device(const Representations& reps, const Tensor& draws) const {
  return select_pairs(cosine_similarity(reps), delta, draws);
}

std::vector<MixPair> SampleSelector::select(const Representations& reps, Generator& gen, SelectionStats* stats) const {
  const int64_t B = reps.t.defined() ? reps.t.size(0) : 0;
  MSMIX_CHECK(B > 0, "SampleSelector: empty batch");
  const SelectedPairs p = select_on_device(reps, selection_draws(B, gen, reps.t.device()));
  if (stats) *stats = selection_stats(p.stats.to_vector(), B);
  return host_pairs(p.index_i, p.index_j);
}

}  // namespace msmix
