// Gradient descent w_{k+1} = w_k − η∇ℓ(w_k) from w_0 = δ·w0 (SPEC §1) for an ensemble of
// feed-forward nets, with escape detection, a divergence guard and pluggable hooks.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ncflab/model/feedforward.h"
#include "ncflab/model/loss.h"
#include "ncflab/train/engine.h"
#include "ncflab/train/hook.h"
#include "ncflab/train/metrics_sink.h"
#include "ncflab/train/train_state.h"

namespace ncflab {

struct TrainerOptions {
  /// Step size η > 0; time is t = k·η (YAML train.step).
  TORCH_ARG(double, step_size) = 1e-2;
  /// Updates per member at most.
  TORCH_ARG(int64_t, max_steps) = 100000;
  /// r_esc: a member escapes at the first k with ‖w_k‖ ≥ r_esc.
  TORCH_ARG(double, escape_radius) = 0.1;
  /// Freeze each member at its escape step (its final weights are w_{k_esc}).
  TORCH_ARG(bool, stop_at_escape) = true;
  /// Metrics rows at k = 0, log_every, 2·log_every, … and at each member's last step.
  TORCH_ARG(int64_t, log_every) = 100;
  /// Arithmetic of a step.
  TORCH_ARG(EngineKind, engine) = EngineKind::automatic;
};

/// What a run of the trainer ended with.
struct TrainResult {
  TrainState state;  ///< the final state (statuses, escape records, losses, norms)
  EngineKind engine = EngineKind::batched;  ///< the engine that ran
  int64_t iterations = 0;    ///< loop iterations run (each advances every active member)
  double wall_seconds = 0;   ///< time in the loop
  bool interrupted = false;  ///< stopped by SIGINT/SIGTERM

  /// Loop iterations per second of wall time (0 when none were timed).
  double steps_per_second() const {
    return wall_seconds > 0 ? static_cast<double>(iterations) / wall_seconds : 0.0;
  }
};

class Trainer {
 public:
  /// Trains `model`'s weights in place (their current values are w_0) on `inputs` [n, d]
  /// and `labels` [n] (model's device and dtype). `deltas` [S] are the members' δ, used
  /// for the rescaled time δ^(L−2)·t.
  Trainer(FeedForward model, torch::Tensor inputs, torch::Tensor labels, LossKind loss,
          std::vector<double> deltas, TrainerOptions options);

  /// Installs a hook; hooks run in the order added, after escape and divergence checks.
  void add_hook(std::shared_ptr<TrainHook> hook);
  /// Where metrics rows go (none: no metrics are computed).
  void set_metrics_sink(std::shared_ptr<MetricsSink> sink) { sink_ = std::move(sink); }

  /// Continues from a saved state instead of k = 0: the model must already hold w_k;
  /// interrupted members run again.
  void resume_from(const TrainState& saved);

  /// Runs until every member has finished (escaped with stop_at_escape, diverged,
  /// max_steps reached) or SIGINT/SIGTERM arrives (see signals.h).
  TrainResult run();

 private:
  /// k = 0 with every member running, or the resumed state with interrupted members
  /// running again.
  TrainState initial_state() const;
  /// Members of a resumed state that finished exactly at its step.
  std::vector<int64_t> finished_at_resume(const TrainState& state) const;
  /// Sends the column names to the sink.
  void begin_metrics();
  /// ℓ, ∇ℓ and ‖w‖ at w_k for the active members.
  void evaluate(TrainState& state, StepStatistics& statistics);
  /// Divergence, escape, step budget and interrupt; true when interrupted.
  bool check_stops(TrainState& state) const;
  /// w_{k+1} = w_k − η∇ℓ(w_k) for the active members; k and t advance.
  void advance(TrainState& state);
  void check_divergence(TrainState& state) const;
  void check_escape(TrainState& state) const;
  void log_metrics(const TrainState& state);

  FeedForward model_;
  std::unique_ptr<TrainingEngine> engine_;
  TrainerOptions options_;
  int64_t total_degree_ = 0;
  std::vector<double> deltas_;
  std::vector<std::shared_ptr<TrainHook>> hooks_;
  std::shared_ptr<MetricsSink> sink_;
  std::optional<TrainState> resume_;
};

}  // namespace ncflab
