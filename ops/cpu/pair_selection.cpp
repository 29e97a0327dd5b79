#include "ops/cpu/pair_selection.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

namespace msmix::cpu {

void normalize_similarity(std::vector<float>& s, int64_t B) {
  float lo = FLT_MAX, hi = -FLT_MAX;
  for (int64_t i = 0; i < B; ++i)
    for (int64_t j = 0; j < B; ++j)
      if (i != j) lo = std::min(lo, s[i * B + j]), hi = std::max(hi, s[i * B + j]);  // a NaN never wins
  // The range is over the off-diagonal entries alone: the diagonal (self-similarity 1) says nothing.
  const bool flat = B < 2 || !(hi - lo > 1e-8f);
  for (int64_t i = 0; i < B; ++i)
    for (int64_t j = 0; j < B; ++j) {
      float& x = s[i * B + j];
      x = i == j ? 0.0f : flat ? 0.5f : (x - lo) / (hi - lo);
    }
}

std::vector<int64_t> selection_candidates(const std::vector<float>& s, int64_t B, float delta, int64_t* above_delta) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < B; ++i)
    for (int64_t j = 0; j < B; ++j)
      if (i != j && s[i * B + j] > delta) out.push_back(i * B + j);
  if (above_delta) *above_delta = int64_t(out.size());
  if (int64_t(out.size()) >= B) return out;

  // Fallback: the largest entries of the strict upper triangle (never a self-pair, even for small B where
  // fewer than 2B such entries exist).
  std::vector<int64_t> upper;
  for (int64_t i = 0; i < B; ++i)
    for (int64_t j = i + 1; j < B; ++j) upper.push_back(i * B + j);
  auto larger = [&](int64_t x, int64_t y) {  // a strict order: NaN below every number
    return !std::isnan(s[x]) && (std::isnan(s[y]) || s[x] > s[y]);
  };
  std::stable_sort(upper.begin(), upper.end(), larger);
  upper.resize(std::min<size_t>(upper.size(), size_t(2 * B)));
  return upper;
}

uint64_t draw_value(const float* draws, int64_t k) {
  uint64_t r = 0;
  for (int p = 0; p < kDrawParts; ++p) r = (r << 16) | uint64_t(draws[k * kDrawParts + p]);
  return r;
}

std::vector<int64_t> shuffle_candidates(std::vector<int64_t> pool, int64_t B, const float* draws) {
  const uint64_t n = pool.size(), keep = std::min<uint64_t>(n, uint64_t(B));
  for (uint64_t k = 0; k < keep; ++k) std::swap(pool[k], pool[k + draw_value(draws, int64_t(k)) % (n - k)]);
  std::vector<int64_t> out(pool.begin(), pool.begin() + int64_t(keep));
  for (int64_t k = int64_t(keep); k < B; ++k) out.push_back(pool[draw_value(draws, k) % n]);
  return out;
}

void select_pairs(const float* similarity, int64_t B, float delta, const float* draws, float* pairs, float* stats) {
  std::vector<float> s(similarity, similarity + B * B);
  normalize_similarity(s, B);
  int64_t above = 0;
  const std::vector<int64_t> pool = selection_candidates(s, B, delta, &above);
  const std::vector<int64_t> chosen = pool.empty() ? std::vector<int64_t>(size_t(B), 0)  // B = 1: (0, 0)
                                                   : shuffle_candidates(pool, B, draws);
  double similarity_sum = 0;
  for (int64_t k = 0; k < B; ++k) {
    const int64_t p = chosen[size_t(k)];
    pairs[k] = float(p / B);
    pairs[B + k] = float(p % B);
    similarity_sum += s[size_t(p)];
  }
  stats[0] = float(above);
  stats[1] = above < B ? 1.0f : 0.0f;
  stats[2] = float(pool.size());
  stats[3] = float(similarity_sum / double(B));
}

}  // namespace msmix::cpu
