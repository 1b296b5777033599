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

#include "ncflab/engine.h"
#include "ncflab/feedforward.h"
#include "ncflab/hooks.h"
#include "ncflab/loss.h"

namespace ncflab {

struct TrainerOptions {
  /// Step size η > 0; time is t = k·η.
  TORCH_ARG(double, step) = 1e-2;
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

/// Receives the metrics: first the column names (once), then rows.
class MetricsSink {
 public:
  virtual ~MetricsSink() = default;
  /// Column names after the fixed "member,step,time" columns.
  virtual void begin(const std::vector<std::string>& names) = 0;
  /// Values (one per name) of member `member` at step k, time t.
  virtual void row(int64_t member, int64_t step, double time, const std::vector<double>& values) = 0;
  /// Called after each logged step and at the end: push rows to storage.
  virtual void flush() = 0;
};

/// What a run of the trainer ended with.
struct TrainResult {
  TrainState state;          ///< the final state (statuses, escape records, losses, norms)
  EngineKind engine = EngineKind::batched;  ///< the engine that ran
  int64_t iterations = 0;    ///< loop iterations run (each advances every active member)
  double wall_seconds = 0;   ///< time in the loop
  bool interrupted = false;  ///< stopped by SIGINT/SIGTERM
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

/// δ^(L−2)·t: the time on the NCF flow's clock that step time t corresponds to
/// (t itself for L = 2, where there is no rescaling).
double rescaled_time(double time, double delta, int64_t total_degree);

/// The inverse: the step time t = τ/δ^(L−2) that flow time τ corresponds to (e.g. the
/// escape the theory predicts, T*/δ^(L−2)).
double training_time(double flow_time, double delta, int64_t total_degree);

}  // namespace ncflab
