#include "msmix/metrics.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "engine/error.h"

namespace msmix {
namespace {

void check_inputs(const char* what, const std::vector<float>& pred, const std::vector<float>& label) {
  MSMIX_CHECK(pred.size() == label.size(), "{}: {} predictions for {} labels", what, pred.size(), label.size());
  MSMIX_CHECK(!pred.empty(), "{}: no samples", what);
  for (size_t i = 0; i < pred.size(); ++i)
    MSMIX_CHECK(std::isfinite(pred[i]) && std::isfinite(label[i]), "{}: non-finite value at sample {} "
                "(prediction {}, label {})", what, i, pred[i], label[i]);
}

// numpy's clip then round (half to even: nearbyint under the default rounding mode).
float clip(float x, float lo, float hi) { return std::min(std::max(x, lo), hi); }
double rounded_class_accuracy(const std::vector<float>& p, const std::vector<float>& t, float bound) {
  size_t hit = 0;
  for (size_t i = 0; i < p.size(); ++i)
    hit += std::nearbyint(clip(p[i], -bound, bound)) == std::nearbyint(clip(t[i], -bound, bound));
  return double(hit) / double(p.size());
}

double accuracy(const std::vector<int>& a, const std::vector<int>& b) {
  if (a.empty()) return std::nan("");
  size_t hit = 0;
  for (size_t i = 0; i < a.size(); ++i) hit += a[i] == b[i];
  return double(hit) / double(a.size());
}

double mae(const std::vector<float>& p, const std::vector<float>& t) {
  double s = 0;
  for (size_t i = 0; i < p.size(); ++i) s += std::fabs(double(p[i]) - double(t[i]));
  return s / double(p.size());
}

std::vector<double> as_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// Class of x for left-open, right-closed bins (edges[k], edges[k+1]]; values outside all bins keep -1
// (they cannot occur after clipping to [-1, 1] with MMSA's edges at +-1.01).
int bin_of(float x, const std::vector<float>& edges) {
  for (size_t k = 0; k + 1 < edges.size(); ++k)
    if (x > edges[k] && x <= edges[k + 1]) return int(k);
  return -1;
}

}  // namespace

double round4(double x) {
  if (!std::isfinite(x)) return x;
  // Round the decimal representation, as Python does, rather than x * 1e4 (which is inexact).
  return std::stod(fmt::format("{:.4f}", x));
}

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  size_t n = x.size();
  double mx = 0, my = 0;
  for (size_t i = 0; i < n; ++i) mx += x[i], my += y[i];
  mx /= double(n), my /= double(n);
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  if (sxx == 0 || syy == 0) return std::nan("");  // correlation undefined for a constant vector
  double r = sxy / std::sqrt(sxx * syy);
  return std::max(-1.0, std::min(1.0, r));  // numpy clips too
}

double weighted_f1(const std::vector<int>& truth, const std::vector<int>& pred) {
  if (truth.empty()) return std::nan("");
  std::set<int> labels(truth.begin(), truth.end());
  labels.insert(pred.begin(), pred.end());
  double total = 0;
  for (int c : labels) {
    size_t tp = 0, fp = 0, fn = 0, support = 0;
    for (size_t i = 0; i < truth.size(); ++i) {
      bool t = truth[i] == c, p = pred[i] == c;
      tp += t && p, fp += !t && p, fn += t && !p, support += t;
    }
    // sklearn's zero_division: an undefined precision or recall counts as 0, and so does its F1.
    double f1 = tp == 0 ? 0.0 : 2.0 * tp / double(2 * tp + fp + fn);
    total += f1 * double(support);
  }
  return total / double(truth.size());
}

Metrics mosi_metrics(const std::vector<float>& pred, const std::vector<float>& label) {
  check_inputs("mosi_metrics", pred, label);
  std::vector<int> has0_t, has0_p, non0_t, non0_p;
  for (size_t i = 0; i < pred.size(); ++i) {
    has0_t.push_back(label[i] >= 0);
    has0_p.push_back(pred[i] >= 0);
    if (label[i] != 0) {
      non0_t.push_back(label[i] > 0);
      non0_p.push_back(pred[i] > 0);
    }
  }
  Metrics m = {
      {"Has0_acc_2", accuracy(has0_p, has0_t)},
      {"Has0_F1_score", weighted_f1(has0_t, has0_p)},
      {"Non0_acc_2", accuracy(non0_p, non0_t)},
      {"Non0_F1_score", weighted_f1(non0_t, non0_p)},
      {"Mult_acc_5", rounded_class_accuracy(pred, label, 2)},
      {"Mult_acc_7", rounded_class_accuracy(pred, label, 3)},
      {"MAE", mae(pred, label)},
      {"Corr", pearson(as_double(pred), as_double(label))},
  };
  for (auto& [name, v] : m) v = round4(v);
  return m;
}

Metrics sims_metrics(const std::vector<float>& pred_in, const std::vector<float>& label_in) {
  check_inputs("sims_metrics", pred_in, label_in);
  std::vector<float> pred, label;
  for (size_t i = 0; i < pred_in.size(); ++i) {
    pred.push_back(clip(pred_in[i], -1, 1));
    label.push_back(clip(label_in[i], -1, 1));
  }
  auto classes = [](const std::vector<float>& v, const std::vector<float>& edges) {
    std::vector<int> out;
    for (float x : v) out.push_back(bin_of(x, edges));
    return out;
  };
  const std::vector<float> e2 = {-1.01f, 0.0f, 1.01f}, e3 = {-1.01f, -0.1f, 0.1f, 1.01f},
                           e5 = {-1.01f, -0.7f, -0.1f, 0.1f, 0.7f, 1.01f};
  std::vector<int> p2 = classes(pred, e2), t2 = classes(label, e2);
  Metrics m = {
      {"Mult_acc_2", accuracy(p2, t2)},
      {"Mult_acc_3", accuracy(classes(pred, e3), classes(label, e3))},
      {"Mult_acc_5", accuracy(classes(pred, e5), classes(label, e5))},
      {"F1_score", weighted_f1(t2, p2)},
      {"MAE", mae(pred, label)},
      {"Corr", pearson(as_double(pred), as_double(label))},
  };
  for (auto& [name, v] : m) v = round4(v);
  return m;
}

Metrics dataset_metrics(const std::string& dataset, const std::vector<float>& pred, const std::vector<float>& label) {
  return dataset.find("sims") != std::string::npos ? sims_metrics(pred, label) : mosi_metrics(pred, label);
}

double metric(const Metrics& m, const std::string& name) {
  for (auto& [n, v] : m)
    if (n == name) return v;
  throw Error(fmt::format("metrics: no metric named '{}'", name));
}

}  // namespace msmix
