// compare: the summary statistics and table, the mixing statistics per method, and methods x seeds run into
// one folder on tiny synthetic runs (tests/msmix/tiny_runs.h), reusing finished runs.
#include <filesystem>

#include "msmix/compare.h"
#include "tests/files.h"
#include "tests/msmix/tiny_runs.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;
namespace fs = std::filesystem;

TEST_CASE("compare: summary statistics (population std, display units) and the table") {
  std::vector<RunRecord> runs = {
      {"none", 1, {{"Has0_acc_2", 0.70}, {"MAE", 1.0}}, {1.2, 1.1}, 2, {}},
      {"none", 2, {{"Has0_acc_2", 0.80}, {"MAE", 0.8}}, {1.3, 1.0, 1.05}, 2, {}},
      {"msmix", 1, {{"Has0_acc_2", 0.90}, {"MAE", 0.7}}, {1.1, 0.9}, 2, {}},
  };
  Comparison c = summarize(runs, {"none", "msmix"});
  REQUIRE(c.metrics == std::vector<std::string>{"Has0_acc_2", "MAE"});
  CHECK(c.runs == std::vector<int64_t>{2, 1});
  CHECK(c.mean[0][0] == doctest::Approx(75.0));  // x100
  CHECK(c.std[0][0] == doctest::Approx(5.0));    // population std of 70, 80
  CHECK(c.mean[0][1] == doctest::Approx(0.9));   // MAE as is
  CHECK(c.std[0][1] == doctest::Approx(0.1));
  CHECK(c.std[1][0] == 0);
  CHECK(higher_is_better("Corr"));
  CHECK_FALSE(higher_is_better("MAE"));

  const std::string md = comparison_markdown(c, "t");
  CHECK(md.find("| Has0_acc_2 | 75.00 +- 5.00 | 90.00 +- 0.00 | +15.00 |") != std::string::npos);
  CHECK(md.find("| MAE | 0.9000 +- 0.1000 | 0.7000 +- 0.0000 | -0.2000 |") != std::string::npos);
  CHECK(md.find("better on 2 of 2 metrics") != std::string::npos);
  const std::string csv = comparison_csv(c);
  CHECK(csv.rfind("metric,none_mean,none_std,msmix_mean,msmix_std,msmix_minus_none\n", 0) == 0);
  CHECK(runs_csv(runs).find("msmix,1,2,0.9,0.7") != std::string::npos);

  const std::string svg = learning_curves_svg(runs, {"none", "msmix"}, "a <title> & more");
  CHECK(svg.rfind("<svg", 0) == 0);
  CHECK(svg.find("</svg>") != std::string::npos);
  size_t polylines = 0;
  for (size_t at = svg.find("<polyline"); at != std::string::npos; at = svg.find("<polyline", at + 1)) ++polylines;
  CHECK(polylines == 5);  // 3 runs + 2 means
  CHECK(svg.find("a &lt;title&gt; &amp; more") != std::string::npos);

  check_throws_with([&] { summarize(runs, {"none", "mixup"}); }, {"no finished run of method 'mixup'"});
}

TEST_CASE("compare: the mixing statistics are averaged up to the best epoch and tabled per method") {
  std::vector<Json> log = {Json{{"epoch", 1}, {"mix", {{"fallback_fraction", 0.5}, {"intensity_t_mean", 1.0}}}},
                           Json{{"epoch", 2}, {"mix", {{"fallback_fraction", 0.0}, {"intensity_t_mean", 2.0}}}},
                           Json{{"epoch", 3}, {"mix", {{"fallback_fraction", 1.0}, {"intensity_t_mean", 9.0}}}}};
  std::map<std::string, double> up_to_2 = mix_summary(log, 2);
  CHECK(up_to_2.at("fallback_fraction") == doctest::Approx(0.25));
  CHECK(up_to_2.at("intensity_t_mean") == doctest::Approx(1.5));
  CHECK(mix_summary(log, 0).at("intensity_t_mean") == doctest::Approx(4.0));  // no best epoch: all lines
  CHECK(mix_summary({Json{{"epoch", 1}}}, 1).empty());                        // method none

  RunRecord a, b, n;
  a.method = b.method = "mixup", n.method = "none";
  a.mix = {{"opposite_sign_fraction", 0.4}}, b.mix = {{"opposite_sign_fraction", 0.6}};
  const std::string table = mixing_markdown({n, a, b}, {"none", "mixup"});
  CHECK(table.find("| mixup |") != std::string::npos);
  CHECK(table.find("| none |") == std::string::npos);
  CHECK(table.find("| pairs with opposite-sign labels | 0.500 +- 0.100 |") != std::string::npos);
  CHECK(table.find("fallback") == std::string::npos);  // a row no method has is left out
  CHECK(mixing_markdown({n}, {"none"}).empty());
}

TEST_CASE("compare: methods x seeds into one folder, a table with every metric, reruns reuse finished runs") {
  TempDir tmp("compare");
  CompareCommand command;
  command.base = tiny_spec("none", 0, 2);
  command.methods = {"none", "msmix"};
  command.seeds = {1111, 1112};
  command.out = tmp.file("cmp");
  std::ostringstream progress_text, out;
  Progress progress(progress_text, false);
  CompareResult r = compare_command(command, progress, out);
  CHECK(r.runs.size() == 4);
  for (const std::string& name : kMosiMetrics) CHECK(r.markdown.find("| " + name + " |") != std::string::npos);
  CHECK(r.markdown.find("msmix - none") != std::string::npos);
  CHECK(out.str().find(r.markdown) != std::string::npos);
  // The mixing table: a column for msmix only (none mixes nothing), every row filled from its log.
  CHECK(r.markdown.find("| what the mixing did (training, up to the best epoch) | msmix |") != std::string::npos);
  CHECK(r.markdown.find("| batches on the top-2B fallback |") != std::string::npos);
  CHECK(r.markdown.find("| text intensity: mean |") != std::string::npos);
  for (const RunRecord& run : r.runs) CHECK(run.mix.empty() == (run.method == "none"));
  for (const char* f : {"compare.md", "compare.csv", "runs.csv", "curves.svg", "none-1111/results.json",
                        "msmix-1112/log.jsonl"})
    CHECK_MESSAGE(fs::exists(fs::path(command.out) / f), f);
  // Piped progress: one header per run and one line per epoch, no bar.
  CHECK(progress_text.str().find("\r") == std::string::npos);
  CHECK(progress_text.str().find("epoch   2 |") != std::string::npos);

  std::ostringstream again_progress, again_out;
  Progress quiet(again_progress, false);
  CompareResult again = compare_command(command, quiet, again_out);
  CHECK(again.markdown == r.markdown);
  CHECK(again_progress.str().find("reusing") != std::string::npos);
  CHECK(again_progress.str().find("epoch   1 |") == std::string::npos);
}
