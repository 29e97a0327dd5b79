#include "msmix/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>

namespace msmix {

namespace {

constexpr int kBarWidth = 24;
constexpr double kRedrawSeconds = 0.1;

double seconds_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// A metric from a log line's "valid" object, or "-" when absent or null (NaN).
std::string metric_text(const Json& line, const char* name) {
  if (!line.contains("valid") || !line["valid"].contains(name) || !line["valid"][name].is_number()) return "-";
  return fmt::format("{:.4f}", line["valid"][name].get<double>());
}

}  // namespace

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = int64_t(std::llround(seconds));
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

std::string format_progress_bar(const StepInfo& s, double items_per_second, double eta_seconds) {
  const double done = s.steps > 0 ? double(s.step) / double(s.steps) : 0;
  const int filled = int(done * kBarWidth);
  std::string bar(size_t(filled), '=');
  if (filled < kBarWidth) bar += '>';
  bar.resize(kBarWidth, ' ');
  return fmt::format("epoch {}/{} [{}] {}/{} loss {:.4f} | {:.0f} it/s | ETA {}", s.epoch, s.max_epochs, bar, s.step,
                     s.steps, s.loss_value(), items_per_second, format_duration(eta_seconds));
}

std::string format_epoch_line(const Json& line) {
  std::string lr = "-";
  if (line.contains("lr") && line["lr"].is_object() && !line["lr"].empty()) {
    lr.clear();
    for (auto it = line["lr"].begin(); it != line["lr"].end(); ++it)
      lr += fmt::format("{}{:g}", lr.empty() ? "" : ",", it.value().get<double>());
  }
  // MS-Mix: how often its selection fell back to the top 2B (too few pairs above delta).
  std::string fallback;
  if (line.contains("mix") && line["mix"].is_object() && line["mix"].contains("fallback_fraction"))
    fallback = fmt::format(" | fallback {:.0f}%", 100 * line["mix"]["fallback_fraction"].get<double>());
  return fmt::format("epoch {:>3} | train {:.4f} | valid {:.4f} (best @ {}) | MAE {} Corr {} | lr {}{} | {:.1f} s",
                     line.value("epoch", int64_t(0)), line.value("train_loss", NAN), line.value("valid_loss", NAN),
                     line.value("best_epoch", int64_t(0)), metric_text(line, "MAE"), metric_text(line, "Corr"), lr,
                     fallback, line.value("seconds", 0.0));
}

Progress::Progress(std::ostream& out, bool interactive) : out_(out), interactive_(interactive) {}

bool Progress::stderr_is_terminal() { return ::isatty(2) == 1; }

void Progress::clear_bar() {
  if (!bar_shown_) return;
  out_ << "\r\033[K" << std::flush;
  bar_shown_ = false;
}

void Progress::message(const std::string& line) {
  clear_bar();
  out_ << line << "\n" << std::flush;
}

void Progress::step(const StepInfo& s) {
  if (!interactive_) return;
  const auto now = std::chrono::steady_clock::now();
  if (s.epoch != epoch_) {  // a new epoch (or run): restart the rate and the ETA
    epoch_ = s.epoch;
    items_ = 0;
    epoch_start_ = now;
    last_draw_ = now - std::chrono::seconds(1);
  }
  items_ += s.items;
  if (seconds_between(last_draw_, now) < kRedrawSeconds && s.step < s.steps) return;
  last_draw_ = now;
  const double elapsed = seconds_between(epoch_start_, now);
  const double rate = elapsed > 0 ? double(items_) / elapsed : 0;
  const double eta = s.step > 0 ? elapsed / double(s.step) * double(s.steps - s.step) : NAN;
  out_ << "\r\033[K" << format_progress_bar(s, rate, eta) << std::flush;
  bar_shown_ = true;
}

void Progress::epoch(const Json& line) {
  message(format_epoch_line(line));
  epoch_ = -1;
}

}  // namespace msmix
