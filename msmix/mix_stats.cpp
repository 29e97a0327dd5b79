#include "msmix/mix_stats.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/autograd.h"
#include "engine/error.h"
#include "ops/cpu/pair_selection.h"
#include "ops/ops.h"

namespace msmix {

namespace {

Tensor flat(const Tensor& x) { return reshape(x.detach(), {x.numel()}); }

// Population std from sums over n values (0 for n < 1; rounding can make the variance slightly negative).
double std_of(double sum, double sum_sq, double n) {
  if (n < 1) return 0;
  const double mean = sum / n;
  return std::sqrt(std::max(0.0, sum_sq / n - mean * mean));
}

}  // namespace

PendingMixStep pending_mix_step(const MixResult& r) {
  PendingMixStep p;
  if (!r.active) return p;
  NoGradGuard no_grad;
  p.samples = r.labels.numel();
  if (r.weights.defined()) {  // MultiMix: [N, B] weights, reduced on the device to what the summary reports
    const Tensor w = r.weights.detach();
    p.weighted = true;
    p.pairs = w.size(0);
    p.values = concat({max(w, {1}), sum(mul(w, w), {1}), flat(r.mixed_labels), flat(r.labels)}, 0);
    return p;
  }
  p.pairs = r.index_i.numel();
  p.has_intensity = r.intensity_t.defined() && r.intensity_a.defined() && r.intensity_v.defined();
  p.has_selection = r.selection.defined();
  std::vector<Tensor> parts = {flat(r.labels_i), flat(r.labels_j), flat(r.lambda_base), flat(r.lambda_t),
                               flat(r.lambda_a), flat(r.lambda_v), flat(r.lambda_label), flat(r.mixed_labels),
                               flat(r.index_i), flat(r.index_j), flat(r.labels)};
  if (p.has_intensity)
    for (const Tensor* t : {&r.intensity_t, &r.intensity_a, &r.intensity_v}) parts.push_back(flat(*t));
  if (p.has_selection) parts.push_back(flat(r.selection));
  p.values = concat(parts, 0);
  return p;
}

MixStepStats mix_step_stats(const PendingMixStep& p, const std::vector<float>& host) {
  MixStepStats s;
  const int64_t N = p.pairs, B = p.samples;
  if (N == 0) return s;
  if (p.weighted) {
    MSMIX_CHECK(host.size() == size_t(3 * N + B),
                "mix statistics: expected {} values for {} mixed and {} samples, got {}", 3 * N + B, N, B, host.size());
    const float *top = host.data(), *square = top + N, *mixed = square + N, *y = mixed + N;
    s.pairs = N;
    s.weighted = true;
    for (int64_t k = 0; k < N; ++k) {
      s.weight_max += top[k];
      s.sources_effective += square[k] > 0 ? 1.0 / double(square[k]) : 0.0;
      s.abs_mixed_label += std::fabs(double(mixed[k]));
    }
    s.samples = B;
    for (int64_t b = 0; b < B; ++b) s.abs_label += std::fabs(double(y[b]));
    return s;
  }
  const size_t expected =
      size_t(10 * N + B * (p.has_intensity ? 4 : 1) + (p.has_selection ? cpu::kSelectionStats : 0));
  MSMIX_CHECK(host.size() == expected, "mix statistics: expected {} values for {} pairs and {} samples, got {}",
              expected, N, B, host.size());
  const float *yi = host.data(), *yj = yi + N, *base = yj + N, *lt = base + N, *la = lt + N, *lv = la + N,
              *ll = lv + N, *mixed = ll + N, *pi = mixed + N, *pj = pi + N, *y = pj + N;
  s.pairs = N;
  for (int64_t k = 0; k < N; ++k) {
    s.same_sample += pi[k] == pj[k];
    s.opposite_sign += double(yi[k]) * double(yj[k]) < 0;
    s.label_distance += std::fabs(double(yi[k]) - double(yj[k]));
    s.base += base[k];
    s.base_sq += double(base[k]) * base[k];
    s.label += ll[k];
    s.label_sq += double(ll[k]) * ll[k];
    s.diff_ta += std::fabs(double(lt[k]) - double(la[k]));
    s.diff_tv += std::fabs(double(lt[k]) - double(lv[k]));
    s.diff_av += std::fabs(double(la[k]) - double(lv[k]));
    s.abs_mixed_label += std::fabs(double(mixed[k]));
  }
  s.samples = B;
  for (int64_t b = 0; b < B; ++b) s.abs_label += std::fabs(double(y[b]));
  s.has_intensity = p.has_intensity;
  if (p.has_intensity)
    for (int m = 0; m < 3; ++m)
      for (int64_t b = 0; b < B; ++b) {
        const double v = y[(m + 1) * B + b];
        s.intensity[m] += v;
        s.intensity_sq[m] += v * v;
      }
  if (p.has_selection) {
    const float* sel = y + B * (p.has_intensity ? 4 : 1);
    s.selection = selection_stats(std::vector<float>(sel, sel + cpu::kSelectionStats), B);
  }
  return s;
}

MixStepStats mix_step_stats(const MixResult& r) {
  const PendingMixStep p = pending_mix_step(r);
  return p.values.defined() ? mix_step_stats(p, p.values.to_vector()) : MixStepStats();
}

void MixStats::add(const MixResult& r) {
  if (r.active) add(pending_mix_step(r));
}

void MixStats::add(PendingMixStep p) {
  if (p.pairs > 0) pending_.push_back(std::move(p));
}

void MixStats::read_pending() {
  if (pending_.empty()) return;
  std::vector<Tensor> all;
  for (const PendingMixStep& p : pending_) all.push_back(p.values);
  std::vector<float> host;
  {
    NoGradGuard no_grad;
    host = concat(all, 0).to_vector();
  }
  size_t at = 0;
  for (const PendingMixStep& p : pending_) {
    const size_t n = size_t(p.values.numel());
    add(mix_step_stats(p, std::vector<float>(host.begin() + long(at), host.begin() + long(at + n))));
    at += n;
  }
  pending_.clear();
}

void MixStats::add(const MixStepStats& s) {
  if (s.pairs == 0) return;
  ++steps_;
  sum_.pairs += s.pairs;
  sum_.same_sample += s.same_sample;
  sum_.opposite_sign += s.opposite_sign;
  sum_.label_distance += s.label_distance;
  sum_.base += s.base;
  sum_.base_sq += s.base_sq;
  sum_.label += s.label;
  sum_.label_sq += s.label_sq;
  sum_.diff_ta += s.diff_ta;
  sum_.diff_tv += s.diff_tv;
  sum_.diff_av += s.diff_av;
  sum_.abs_label += s.abs_label;
  sum_.abs_mixed_label += s.abs_mixed_label;
  sum_.samples += s.samples;
  sum_.weighted = sum_.weighted || s.weighted;
  sum_.weight_max += s.weight_max;
  sum_.sources_effective += s.sources_effective;
  if (s.has_intensity) {
    sum_.has_intensity = true;
    for (int m = 0; m < 3; ++m) sum_.intensity[m] += s.intensity[m], sum_.intensity_sq[m] += s.intensity_sq[m];
  }
  const SelectionStats& sel = s.selection;
  if (sel.needed > 0) {
    ++selection_steps_;
    fallbacks_ += sel.fallback;
    above_delta_ += double(sel.above_delta);
    // Of the B(B - 1) ordered off-diagonal pairs, the share above delta (0 at B = 1, which has none).
    candidate_fraction_ += sel.needed > 1 ? double(sel.above_delta) / double(sel.needed * (sel.needed - 1)) : 0.0;
    pool_ += double(sel.pool);
    pair_similarity_ += sel.pair_similarity;
  }
}

Json MixStats::summary() {
  read_pending();
  Json j = Json::object();
  if (steps_ == 0) return j;
  const double n = double(sum_.pairs), b = double(sum_.samples);
  j["steps"] = steps_;
  if (sum_.weighted) {  // MultiMix: no pairs, no ratios; how its weights spread over the batch
    j["mixed_per_batch"] = n / double(steps_);
    j["label_abs_mean"] = sum_.abs_label / b;
    j["mixed_label_abs_mean"] = sum_.abs_mixed_label / n;
    j["weight_max_mean"] = sum_.weight_max / n;
    j["sources_effective_mean"] = sum_.sources_effective / n;
    return j;
  }
  j["pairs_per_batch"] = n / double(steps_);
  if (selection_steps_ > 0) {
    const double k = double(selection_steps_);
    j["candidates_per_batch"] = above_delta_ / k;
    j["candidate_fraction"] = candidate_fraction_ / k;
    j["fallback_fraction"] = double(fallbacks_) / k;
    j["pool_per_batch"] = pool_ / k;
    j["pair_similarity_mean"] = pair_similarity_ / k;
  }
  j["same_sample_fraction"] = sum_.same_sample / n;
  j["opposite_sign_fraction"] = sum_.opposite_sign / n;
  j["label_distance_mean"] = sum_.label_distance / n;
  j["label_abs_mean"] = sum_.abs_label / b;
  j["mixed_label_abs_mean"] = sum_.abs_mixed_label / n;
  j["lambda_base_mean"] = sum_.base / n;
  j["lambda_base_std"] = std_of(sum_.base, sum_.base_sq, n);
  j["lambda_label_mean"] = sum_.label / n;
  j["lambda_label_std"] = std_of(sum_.label, sum_.label_sq, n);
  j["lambda_diff_ta"] = sum_.diff_ta / n;
  j["lambda_diff_tv"] = sum_.diff_tv / n;
  j["lambda_diff_av"] = sum_.diff_av / n;
  if (sum_.has_intensity) {
    const char* names[3] = {"t", "a", "v"};
    for (int m = 0; m < 3; ++m) {
      j[fmt::format("intensity_{}_mean", names[m])] = sum_.intensity[m] / b;
      j[fmt::format("intensity_{}_std", names[m])] = std_of(sum_.intensity[m], sum_.intensity_sq[m], b);
    }
  }
  return j;
}

}  // namespace msmix
