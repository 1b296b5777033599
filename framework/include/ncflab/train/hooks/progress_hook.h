// The progress line of a run: enough to see at a glance that training is alive, how
// fast it goes, and that ‖w‖ is still O(δ) before escape.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

#include "ncflab/train/hook.h"

namespace ncflab {

/// A progress line: iteration, iterations/s, ETA, loss, ‖w‖/δ and members still running.
/// On a terminal it is redrawn in place every `interval`; otherwise a plain line each time.
class ProgressHook final : public TrainHook {
 public:
  /// `expected_escape_step` (≤ 0: unknown) lets the ETA aim at the predicted escape.
  /// `unit` names an iteration ("step" for gradient descent, "row" for gradient flow,
  /// whose iterations are slow enough to read the clock at each).
  ProgressHook(std::ostream& out, bool terminal, std::chrono::duration<double> interval,
               int64_t max_steps, int64_t expected_escape_step, std::string unit = "step");
  void on_start(TrainState& state) override;
  void on_step(TrainState& state) override;
  /// It draws at whichever steps it is called.
  int64_t next_step(int64_t step) const override { return never_again; }
  void on_end(TrainState& state) override;

 private:
  void draw(const TrainState& state, bool final_line);

  std::ostream& out_;
  bool terminal_;
  std::chrono::duration<double> interval_;
  int64_t max_steps_;
  int64_t expected_escape_step_;
  std::string unit_;
  int64_t clock_every_;  // iterations between two readings of the clock
  int64_t next_clock_step_ = 0;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point last_draw_;
  int64_t start_step_ = 0;
};

}  // namespace ncflab
