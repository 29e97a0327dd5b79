#include "msmix/compare.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

#include "engine/error.h"

namespace msmix {

namespace {

// Mean and population std (numpy's np.std, as MMSA's run.py) of a non-empty list.
std::pair<double, double> mean_and_std(const std::vector<double>& v) {
  double m = 0, ss = 0;
  for (double x : v) m += x;
  m /= double(v.size());
  for (double x : v) ss += (x - m) * (x - m);
  return {m, std::sqrt(ss / double(v.size()))};
}

int decimals(const std::string& metric) { return display_scale(metric) == 100 ? 2 : 4; }

std::string number(double x, int places) { return std::isfinite(x) ? fmt::format("{:.{}f}", x, places) : "nan"; }
std::string signed_number(double x, int places) {
  return std::isfinite(x) ? fmt::format("{:+.{}f}", x, places) : "nan";
}

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

const char* color(size_t method) {
  static const char* palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};
  return palette[method % 6];
}

// A "nice" tick step (1, 2 or 5 x 10^k) giving about `count` ticks over `span`.
double tick_step(double span, int count) {
  const double raw = span / count, power = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0})
    if (raw <= m * power) return m * power;
  return 10 * power;
}

}  // namespace

bool higher_is_better(const std::string& metric) {
  std::string lower = metric;
  for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
  return lower != "mae" && lower.find("loss") == std::string::npos;
}

double display_scale(const std::string& metric) { return metric == "MAE" || metric == "Corr" ? 1.0 : 100.0; }

Comparison summarize(const std::vector<RunRecord>& runs, const std::vector<std::string>& methods) {
  MSMIX_CHECK(!methods.empty() && !runs.empty(), "compare: nothing to summarise ({} methods, {} runs)", methods.size(),
              runs.size());
  Comparison c;
  c.methods = methods;
  for (const auto& [name, value] : runs[0].test) c.metrics.push_back(name);
  for (const std::string& method : methods) {
    std::vector<std::vector<double>> values(c.metrics.size());  // [metric][run]
    for (const RunRecord& r : runs) {
      if (r.method != method) continue;
      MSMIX_CHECK(r.test.size() == c.metrics.size(), "compare: run {} seed {} has {} metrics, the first run {}", method,
                  r.seed, r.test.size(), c.metrics.size());
      for (size_t k = 0; k < c.metrics.size(); ++k) {
        MSMIX_CHECK(r.test[k].first == c.metrics[k], "compare: run {} seed {} has metric '{}' where '{}' was expected",
                    method, r.seed, r.test[k].first, c.metrics[k]);
        values[k].push_back(r.test[k].second * display_scale(c.metrics[k]));
      }
    }
    MSMIX_CHECK(!values.empty() && !values[0].empty(), "compare: no finished run of method '{}'", method);
    std::vector<double> mean, std;
    for (const std::vector<double>& v : values) {
      const auto [m, sd] = mean_and_std(v);
      mean.push_back(m);
      std.push_back(sd);
    }
    c.runs.push_back(int64_t(values[0].size()));
    c.mean.push_back(mean);
    c.std.push_back(std);
  }
  return c;
}

std::string comparison_markdown(const Comparison& c, const std::string& title) {
  std::string out = title.empty() ? "" : "### " + title + "\n\n";
  out += "| metric |";
  for (size_t m = 0; m < c.methods.size(); ++m)
    out += fmt::format(" {} ({} seed{}) |", c.methods[m], c.runs[m], c.runs[m] == 1 ? "" : "s");
  for (size_t m = 1; m < c.methods.size(); ++m) out += fmt::format(" {} - {} |", c.methods[m], c.methods[0]);
  out += "\n| --- |";
  for (size_t m = 1; m < 2 * c.methods.size(); ++m) out += " ---: |";
  out += "\n";
  for (size_t k = 0; k < c.metrics.size(); ++k) {
    const int places = decimals(c.metrics[k]);
    out += "| " + c.metrics[k] + " |";
    for (size_t m = 0; m < c.methods.size(); ++m)
      out += fmt::format(" {} +- {} |", number(c.mean[m][k], places), number(c.std[m][k], places));
    for (size_t m = 1; m < c.methods.size(); ++m)
      out += " " + signed_number(c.mean[m][k] - c.mean[0][k], places) + " |";
    out += "\n";
  }
  if (c.methods.size() > 1) out += "\n";
  for (size_t m = 1; m < c.methods.size(); ++m) {
    int better = 0;
    for (size_t k = 0; k < c.metrics.size(); ++k) {
      const double d = c.mean[m][k] - c.mean[0][k];
      better += higher_is_better(c.metrics[k]) ? d > 0 : d < 0;
    }
    out += fmt::format("{} - {}: better on {} of {} metrics (MAE: lower is better)\n", c.methods[m], c.methods[0],
                       better, c.metrics.size());
  }
  out += "\nAccuracies and F1 x100; mean +- population std over seeds.\n";
  return out;
}

std::map<std::string, double> mix_summary(const std::vector<Json>& log, int64_t best_epoch) {
  std::map<std::string, double> sum;
  std::map<std::string, int> count;
  for (size_t e = 0; e < log.size() && (best_epoch <= 0 || int64_t(e) < best_epoch); ++e) {
    const auto it = log[e].find("mix");
    if (it == log[e].end() || !it->is_object()) continue;
    for (auto kv = it->begin(); kv != it->end(); ++kv)
      if (kv.value().is_number()) sum[kv.key()] += kv.value().get<double>(), count[kv.key()]++;
  }
  for (auto& [key, total] : sum) total /= count[key];
  return sum;
}

std::string mixing_markdown(const std::vector<RunRecord>& runs, const std::vector<std::string>& methods) {
  // (row label, key or keys averaged, decimals): what a reader needs to see how the pairs and ratios came out.
  struct Row {
    const char* label;
    std::vector<const char*> keys;
    int places;
  };
  const std::vector<Row> rows = {
      {"pairs above delta (share of all pairs)", {"candidate_fraction"}, 3},
      {"batches on the top-2B fallback", {"fallback_fraction"}, 3},
      {"pairs with opposite-sign labels", {"opposite_sign_fraction"}, 3},
      {"mean abs(y_i - y_j)", {"label_distance_mean"}, 3},  // no | inside a table cell
      {"mean abs(mixed label)", {"mixed_label_abs_mean"}, 3},
      {"std of lambda^L", {"lambda_label_std"}, 3},
      {"mean abs(lambda^m - lambda^n), 3 pairs", {"lambda_diff_ta", "lambda_diff_tv", "lambda_diff_av"}, 3},
      {"multimix: largest weight in a mixed sample", {"weight_max_mean"}, 3},
      {"multimix: samples a mixed one draws on, 1 / sum w^2", {"sources_effective_mean"}, 2},
      {"text intensity: mean", {"intensity_t_mean"}, 3},  // the predictors' outputs lie in [-3, 3]
      {"text intensity: std over an epoch", {"intensity_t_std"}, 3},
      {"audio intensity: mean", {"intensity_a_mean"}, 3},
      {"audio intensity: std over an epoch", {"intensity_a_std"}, 3},
      {"vision intensity: mean", {"intensity_v_mean"}, 3},
      {"vision intensity: std over an epoch", {"intensity_v_std"}, 3},
  };
  bool any = false;
  for (const RunRecord& r : runs) any = any || !r.mix.empty();
  if (!any) return "";
  std::vector<std::string> mixing;
  for (const std::string& m : methods)
    for (const RunRecord& r : runs)
      if (r.method == m && !r.mix.empty()) {
        mixing.push_back(m);
        break;
      }
  std::string out = "| what the mixing did (training, up to the best epoch) |";
  for (const std::string& m : mixing) out += " " + m + " |";
  out += "\n| --- |";
  for (size_t m = 0; m < mixing.size(); ++m) out += " ---: |";
  out += "\n";
  for (const Row& row : rows) {
    std::string line = fmt::format("| {} |", row.label);
    bool shown = false;
    for (const std::string& m : mixing) {
      std::vector<double> values;  // one per run that has every key of the row
      for (const RunRecord& r : runs) {
        if (r.method != m) continue;
        double v = 0;
        bool has = true;
        for (const char* key : row.keys) {
          const auto it = r.mix.find(key);
          if (it == r.mix.end()) has = false;
          else v += it->second / double(row.keys.size());
        }
        if (has) values.push_back(v);
      }
      if (values.empty()) {
        line += " - |";
        continue;
      }
      const auto [mean, sd] = mean_and_std(values);
      line += fmt::format(" {} +- {} |", number(mean, row.places), number(sd, row.places));
      shown = true;
    }
    if (shown) out += line + "\n";
  }
  out += "\nlog.jsonl's \"mix\" statistics (docs/training.md), each run's epochs averaged up to its best epoch; "
         "mean +- population std over seeds.\n";
  return out;
}

std::string comparison_csv(const Comparison& c) {
  std::string out = "metric";
  for (const std::string& m : c.methods) out += fmt::format(",{}_mean,{}_std", m, m);
  for (size_t m = 1; m < c.methods.size(); ++m) out += fmt::format(",{}_minus_{}", c.methods[m], c.methods[0]);
  out += "\n";
  for (size_t k = 0; k < c.metrics.size(); ++k) {
    out += c.metrics[k];
    for (size_t m = 0; m < c.methods.size(); ++m) out += fmt::format(",{},{}", c.mean[m][k], c.std[m][k]);
    for (size_t m = 1; m < c.methods.size(); ++m) out += fmt::format(",{}", c.mean[m][k] - c.mean[0][k]);
    out += "\n";
  }
  return out;
}

std::string runs_csv(const std::vector<RunRecord>& runs) {
  std::string out = "method,seed,best_epoch";
  if (!runs.empty())
    for (const auto& [name, value] : runs[0].test) out += "," + name;
  out += "\n";
  for (const RunRecord& r : runs) {
    out += fmt::format("{},{},{}", r.method, r.seed, r.best_epoch);
    for (const auto& [name, value] : r.test) out += fmt::format(",{}", value);
    out += "\n";
  }
  return out;
}

std::string learning_curves_svg(const std::vector<RunRecord>& runs, const std::vector<std::string>& methods,
                                const std::string& title) {
  const double W = 760, H = 440, left = 70, right = 180, top = 44, bottom = 52;
  const double plot_w = W - left - right, plot_h = H - top - bottom;
  size_t max_epoch = 1;
  double lo = INFINITY, hi = -INFINITY;
  for (const RunRecord& r : runs) {
    max_epoch = std::max(max_epoch, r.valid_loss.size());
    for (double v : r.valid_loss)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  }
  if (!(lo <= hi)) lo = 0, hi = 1;  // no finite point at all
  if (hi - lo < 1e-9) lo -= 0.5, hi += 0.5;
  const double pad = 0.05 * (hi - lo);
  lo -= pad, hi += pad;
  auto x_of = [&](double epoch) { return left + (max_epoch > 1 ? (epoch - 1) / double(max_epoch - 1) : 0.5) * plot_w; };
  auto y_of = [&](double v) { return top + (hi - v) / (hi - lo) * plot_h; };
  auto points = [&](const std::vector<double>& ys) {
    std::string p;
    for (size_t e = 0; e < ys.size(); ++e)
      if (std::isfinite(ys[e]))
        p += fmt::format("{}{:.1f},{:.1f}", p.empty() ? "" : " ", x_of(double(e + 1)), y_of(ys[e]));
    return p;
  };

  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n",
      W, H);
  s += fmt::format("<text x=\"{}\" y=\"24\" font-size=\"15\" text-anchor=\"middle\">{}</text>\n", left + plot_w / 2,
                   xml_escape(title));
  // Axes, grid and ticks.
  const double y_step = tick_step(hi - lo, 5);
  for (double v = std::ceil(lo / y_step) * y_step; v <= hi; v += y_step) {
    s += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#e5e5e5\"/>\n", left, y_of(v),
                     left + plot_w, y_of(v));
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:g}</text>\n", left - 6, y_of(v) + 4, v);
  }
  const double x_step = std::max(1.0, tick_step(double(max_epoch - 1 > 0 ? max_epoch - 1 : 1), 8));
  for (double e = 1; e <= double(max_epoch) + 1e-9; e += x_step)
    s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{:g}</text>\n", x_of(e), top + plot_h + 18, e);
  s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n", left, top,
                   plot_w, plot_h);
  s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">epoch</text>\n", left + plot_w / 2, H - 12);
  s += fmt::format("<text transform=\"translate(16,{}) rotate(-90)\" text-anchor=\"middle\">validation loss</text>\n",
                   top + plot_h / 2);

  for (size_t m = 0; m < methods.size(); ++m) {
    std::vector<double> sum(max_epoch, 0);
    std::vector<int> count(max_epoch, 0);
    int n = 0;
    for (const RunRecord& r : runs) {
      if (r.method != methods[m]) continue;
      ++n;
      s += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-opacity=\"0.35\" stroke-width=\"1\" points=\"{}\">"
                       "<title>{} seed {}</title></polyline>\n",
                       color(m), points(r.valid_loss), xml_escape(r.method), r.seed);
      if (r.best_epoch >= 1 && size_t(r.best_epoch) <= r.valid_loss.size() &&
          std::isfinite(r.valid_loss[size_t(r.best_epoch - 1)]))
        s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"/>\n", x_of(double(r.best_epoch)),
                         y_of(r.valid_loss[size_t(r.best_epoch - 1)]), color(m));
      for (size_t e = 0; e < r.valid_loss.size(); ++e)
        if (std::isfinite(r.valid_loss[e])) sum[e] += r.valid_loss[e], count[e]++;
    }
    std::vector<double> mean;
    for (size_t e = 0; e < max_epoch && count[e] > 0; ++e) mean.push_back(sum[e] / count[e]);
    s += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2.5\" points=\"{}\"><title>{} mean</title>"
                     "</polyline>\n",
                     color(m), points(mean), xml_escape(methods[m]));
    const double ly = top + 10 + 22 * double(m);
    s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"{3}\" stroke-width=\"2.5\"/>\n",
                     left + plot_w + 14, ly, left + plot_w + 38, color(m));
    s += fmt::format("<text x=\"{}\" y=\"{}\">{} (mean of {})</text>\n", left + plot_w + 44, ly + 4,
                     xml_escape(methods[m]), n);
  }
  s += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#555\">thin: one seed</text>\n", left + plot_w + 14,
                   top + 22 * double(methods.size()) + 18);
  s += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#555\">dot: its best epoch</text>\n", left + plot_w + 14,
                   top + 22 * double(methods.size()) + 34);
  s += "</svg>\n";
  return s;
}

}  // namespace msmix
