// MMSA's regression metrics (utils/metricsTop.py of MMSA v2.2.1), reproduced exactly: same clipping, same
// half-to-even rounding, same zero handling, sklearn's weighted F1, every value rounded to 4 decimals.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace msmix {

// Ordered (name, value) pairs with MMSA's metric names.
using Metrics = std::vector<std::pair<std::string, double>>;

// MOSI / MOSEI: Has0_acc_2, Has0_F1_score, Non0_acc_2, Non0_F1_score, Mult_acc_5, Mult_acc_7, MAE, Corr.
Metrics mosi_metrics(const std::vector<float>& pred, const std::vector<float>& label);
// SIMS: Mult_acc_2, Mult_acc_3, Mult_acc_5, F1_score, MAE, Corr (all on values clipped to [-1, 1]).
Metrics sims_metrics(const std::vector<float>& pred, const std::vector<float>& label);
// Picks by dataset name: "sims" (or a name containing it) uses sims_metrics, anything else mosi_metrics.
Metrics dataset_metrics(const std::string& dataset, const std::vector<float>& pred, const std::vector<float>& label);
double metric(const Metrics& m, const std::string& name);  // throws when absent

// Building blocks, exposed for tests.
double pearson(const std::vector<double>& x, const std::vector<double>& y);  // NaN when either is constant
// sklearn f1_score(y_true, y_pred, average='weighted') over the labels present in either vector.
double weighted_f1(const std::vector<int>& truth, const std::vector<int>& pred);
double round4(double x);  // Python's round(x, 4); NaN stays NaN

}  // namespace msmix
