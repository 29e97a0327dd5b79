#include "msmix/sample_selection.h"

#include <algorithm>
#include <cfloat>
#include <numeric>

#include "engine/autograd.h"
#include "engine/error.h"
#include "ops/ops.h"

namespace msmix {

SampleSelector::SampleSelector(float delta_) : delta(delta_) {
  MSMIX_CHECK(delta_ == delta_, "SampleSelector: delta is NaN");
}

Tensor SampleSelector::cosine_similarity(const Representations& reps) {
  const Tensor* zs[3] = {&reps.t, &reps.a, &reps.v};
  for (const Tensor* z : zs) MSMIX_CHECK(z->defined() && z->dim() >= 2, "SampleSelector: each representation must be [B, d] or [B, T, d], got t {}, a {}, v {}",
                                         reps.t.defined() ? describe(reps.t) : "undefined",
                                         reps.a.defined() ? describe(reps.a) : "undefined",
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

// The selection on host values: s is S' row-major [B, B]. One read of the similarity feeds all of it (a
// read waits for the GPU).
void normalize_in_place(std::vector<float>& s, int64_t B) {
  float lo = FLT_MAX, hi = -FLT_MAX;
  for (int64_t i = 0; i < B; ++i)
    for (int64_t j = 0; j < B; ++j)
      if (i != j) lo = std::min(lo, s[i * B + j]), hi = std::max(hi, s[i * B + j]);
  // The range is over the off-diagonal entries alone: the diagonal (self-similarity 1) says nothing.
  const bool flat = B < 2 || !(hi - lo > 1e-8f);
  for (int64_t i = 0; i < B; ++i)
    for (int64_t j = 0; j < B; ++j) {
      float& x = s[i * B + j];
      x = i == j ? 0.0f : flat ? 0.5f : (x - lo) / (hi - lo);
    }
}

std::vector<MixPair> candidates_of(const std::vector<float>& s, int64_t B, float delta, SelectionStats* stats) {
  std::vector<MixPair> out;
  for (int64_t i = 0; i < B; ++i)
    for (int64_t j = 0; j < B; ++j)
      if (i != j && s[i * B + j] > delta) out.emplace_back(i, j);
  if (stats) {
    *stats = SelectionStats{};
    stats->needed = B;
    stats->above_delta = int64_t(out.size());
    stats->fallback = stats->above_delta < B;
    stats->pool = stats->above_delta;
  }
  if (int64_t(out.size()) >= B) return out;

  // Fallback: the largest entries of the strict upper triangle (never a self-pair, even for small B where
  // fewer than 2B such entries exist).
  std::vector<int64_t> upper;  // flat positions i * B + j, i < j
  for (int64_t i = 0; i < B; ++i)
    for (int64_t j = i + 1; j < B; ++j) upper.push_back(i * B + j);
  std::stable_sort(upper.begin(), upper.end(), [&](int64_t x, int64_t y) { return s[x] > s[y]; });
  upper.resize(std::min<size_t>(upper.size(), size_t(2 * B)));
  out.clear();
  for (int64_t p : upper) out.emplace_back(p / B, p % B);
  if (stats) stats->pool = int64_t(out.size());
  return out;
}

std::vector<MixPair> select_from(const std::vector<float>& s, int64_t B, float delta, Generator& gen,
                                 SelectionStats* stats) {
  MSMIX_CHECK(B > 0, "SampleSelector: empty batch");
  std::vector<MixPair> pool = candidates_of(s, B, delta, stats);
  std::vector<MixPair> out;
  if (pool.empty()) {
    out.assign(size_t(B), MixPair{0, 0});  // B = 1: identity mix
  } else {
    const uint64_t n = pool.size();
    const uint64_t keep = std::min<uint64_t>(n, uint64_t(B));
    for (uint64_t k = 0; k < keep; ++k) std::swap(pool[k], pool[k + gen.randint(n - k)]);
    out.assign(pool.begin(), pool.begin() + keep);
    while (int64_t(out.size()) < B) out.push_back(pool[gen.randint(n)]);
  }
  if (stats) {  // read after the draws: the pairs and the generator are those of a call without stats
    double sum = 0;
    for (const MixPair& p : out) sum += s[size_t(p.first * B + p.second)];
    stats->pair_similarity = sum / double(out.size());
  }
  return out;
}

void check_square(const Tensor& m, const char* what) {
  MSMIX_CHECK(m.defined() && m.dim() == 2 && m.size(0) == m.size(1), "SampleSelector: {} must be square [B, B], got {}",
              what, m.defined() ? describe(m) : "undefined");
}

}  // namespace

Tensor SampleSelector::normalize_similarity(const Tensor& similarity) {
  check_square(similarity, "similarity");
  const int64_t B = similarity.size(0);
  std::vector<float> s = similarity.to_vector();
  normalize_in_place(s, B);
  return Tensor::from_vector(s, {B, B});
}

std::vector<MixPair> SampleSelector::candidates(const Tensor& normalized, SelectionStats* stats) const {
  check_square(normalized, "normalized similarity");
  return candidates_of(normalized.to_vector(), normalized.size(0), delta, stats);
}

std::vector<MixPair> SampleSelector::select(const Tensor& normalized, Generator& gen, SelectionStats* stats) const {
  check_square(normalized, "normalized similarity");
  return select_from(normalized.to_vector(), normalized.size(0), delta, gen, stats);
}

std::vector<MixPair> SampleSelector::select(const Representations& reps, Generator& gen, SelectionStats* stats) const {
  const Tensor similarity = cosine_similarity(reps);
  const int64_t B = similarity.size(0);
  std::vector<float> s = similarity.to_vector();  // the one read back of a selection
  normalize_in_place(s, B);
  return select_from(s, B, delta, gen, stats);
}

}  // namespace msmix
