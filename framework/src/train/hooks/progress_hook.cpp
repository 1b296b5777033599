// The progress line of a run: enough to see at a glance that training is alive, how
// fast it goes, and that ‖w‖ is still O(δ) before escape.
#include "ncflab/train/hooks/progress_hook.h"

#include <fmt/format.h>

#include <algorithm>
#include <ostream>

namespace ncflab {
namespace {

std::string duration_text(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "?";
  const auto s = static_cast<int64_t>(seconds + 0.5);
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s / 60) % 60);
}

}  // namespace

ProgressHook::ProgressHook(std::ostream& out, bool terminal, std::chrono::duration<double> interval,
                           int64_t max_steps, int64_t expected_escape_step, std::string unit)
    : out_(out),
      terminal_(terminal),
      interval_(interval),
      max_steps_(max_steps),
      expected_escape_step_(expected_escape_step),
      unit_(std::move(unit)),
      clock_every_(unit_ == "step" ? 64 : 1) {}

void ProgressHook::on_start(TrainState& state) {
  started_ = last_draw_ = std::chrono::steady_clock::now();
  start_step_ = state.step;
  next_clock_step_ = state.step + clock_every_;
}

void ProgressHook::on_step(TrainState& state) {
  // Reading the clock every step costs ~20 ns; every 64th step is plenty (every call when
  // the trainer takes its steps in chunks).
  if (state.step < next_clock_step_) return;
  next_clock_step_ = state.step + clock_every_;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < interval_) return;
  last_draw_ = now;
  draw(state, false);
}

void ProgressHook::on_end(TrainState& state) {
  if (terminal_) draw(state, true);
}

void ProgressHook::draw(const TrainState& state, bool final_line) {
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  const double rate = elapsed > 0 ? static_cast<double>(state.step - start_step_) / elapsed : 0;
  int64_t running = 0;
  double loss = 0;
  double norm_over_delta = 0;
  for (int64_t s = 0; s < state.members(); ++s) {
    const auto i = static_cast<size_t>(s);
    if (!state.active[i] && !final_line) continue;
    ++running;
    loss = std::max(loss, state.loss[i]);
    norm_over_delta = std::max(norm_over_delta, state.norm[i] / state.deltas[i]);
  }
  int64_t target = max_steps_;
  if (expected_escape_step_ > state.step) target = std::min(target, expected_escape_step_);
  const double eta = rate > 0 ? static_cast<double>(target - state.step) / rate : -1;
  const std::string line = fmt::format(
      "{} {:>9} ({:.0f} {}s/s)  ETA {}{}  loss {:.6g}  ||w||/delta {:.4g}  running {}/{}", unit_,
      state.step, rate, unit_, duration_text(eta), target < max_steps_ ? " to expected escape" : "",
      loss, norm_over_delta, final_line ? 0 : running, state.members());
  if (terminal_) {
    out_ << '\r' << line << "\x1b[K" << (final_line ? "\n" : "") << std::flush;
  } else {
    out_ << "run: " << line << '\n' << std::flush;
  }
}

}  // namespace ncflab
