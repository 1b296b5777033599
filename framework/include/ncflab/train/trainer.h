// Training from w_0 = δ·w0 (SPEC §1) for an ensemble of feed-forward nets: gradient descent
// w_{k+1} = w_k − η∇ℓ(w_k), or the gradient flow dw/dt = −∇ℓ(w) it approximates, with
// escape detection, a divergence guard and pluggable hooks.
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
#include "ncflab/train/gradient_flow.h"
#include "ncflab/train/hook.h"
#include "ncflab/train/metrics_sink.h"
#include "ncflab/train/train_state.h"

namespace ncflab {

/// How training moves the weights.
enum class Integrator {
  gradient_descent,  ///< w_{k+1} = w_k − η∇ℓ(w_k), t = k·η ("gd")
  gradient_flow,     ///< dw/dt = −∇ℓ(w) by adaptive Dormand–Prince 5(4) steps ("flow")
};

/// "gd" or "flow".
const char* integrator_name(Integrator integrator);

struct TrainerOptions {
  /// Gradient descent or gradient flow (YAML train.integrator).
  TORCH_ARG(Integrator, integrator) = Integrator::gradient_descent;
  /// Step size η > 0 of gradient descent; time is t = k·η (YAML train.step).
  TORCH_ARG(double, step_size) = 1e-2;
  /// Updates per member at most (gradient flow: accepted steps, and metrics rows).
  TORCH_ARG(int64_t, max_steps) = 100000;
  /// > 0: each member stops at t = max_time (status max_steps); 0: no limit.
  TORCH_ARG(double, max_time) = 0.0;
  /// r_esc: a member escapes at the first k with ‖w_k‖ ≥ r_esc (gradient flow: the first t
  /// with ‖w(t)‖ = r_esc).
  TORCH_ARG(double, escape_radius) = 0.1;
  /// Freeze each member at its escape (its final weights are w_{k_esc}, or w(t_esc)).
  TORCH_ARG(bool, stop_at_escape) = true;
  /// Gradient descent: metrics rows at k = 0, log_every, 2·log_every, … and at each
  /// member's last step.
  TORCH_ARG(int64_t, log_every) = 100;
  /// Gradient flow: metrics rows where the rescaled time δ^(L−2)·t (t for L = 2) is 0,
  /// log_interval, 2·log_interval, … (by dense output: the steps do not shorten for them),
  /// and at each member's last point.
  TORCH_ARG(double, log_interval) = 1e-2;
  /// Gradient flow: local error tolerances per step (see GradientFlowOptions).
  TORCH_ARG(double, rtol) = 1e-8;
  TORCH_ARG(double, atol) = 0.0;
  /// Gradient flow, p = 1 nets only: steps that move w by at most this fraction of ‖w‖
  /// pass whatever their error estimate (∇ℓ jumps at kinks). 0: off.
  TORCH_ARG(double, kink_step) = 1e-6;
  /// Arithmetic of a step.
  TORCH_ARG(EngineKind, engine) = EngineKind::automatic;
  /// Gradient descent: at most this many steps between two looks of the host loop at the
  /// state; the divergence and escape checks of the steps between run where the steps do —
  /// on the device for the ATen engines (train/device_steps.h), inside the fused engine's
  /// threads on CPU (TrainingEngine::run_steps) — with the same results bit for bit.
  /// Metrics rows, hooks' steps and the step budget always get a look. 0: automatic, 256
  /// on a CUDA device and with the fused engine, 1 (every step) elsewhere.
  TORCH_ARG(int64_t, sync_every) = 0;
  /// With sync_every > 1 on a CUDA device (and a CUDA LibTorch): each step between copies
  /// is a replay of one captured CUDA graph, which saves the launch cost of its ~50 kernels.
  TORCH_ARG(bool, cuda_graph) = true;
  /// Gradient flow on CPU: the stages in per-member loops (false: batched ATen ops, the
  /// CUDA path; for tests and benchmarks).
  TORCH_ARG(bool, flow_host_loops) = true;
};

/// The training time of gradient-flow row j for a member with initial scale δ:
/// δ^(L−2)·t = j·log_interval, capped at max_time when that is > 0. The trainer's rows lie
/// there, and the reference flow is sampled there (experiment/reference_flow.h).
double flow_row_time(const TrainerOptions& options, int64_t row, double delta,
                     int64_t total_degree);

/// What a run of the trainer ended with.
struct TrainResult {
  TrainState state;  ///< the final state (statuses, escape records, losses, norms)
  EngineKind engine = EngineKind::batched;               ///< the engine that ran
  Integrator integrator = Integrator::gradient_descent;  ///< how it moved the weights
  /// Loop iterations run: gradient-descent steps, or gradient-flow trial rounds (each
  /// advances every active member by one step).
  int64_t iterations = 0;
  double wall_seconds = 0;   ///< time in the loop
  bool interrupted = false;  ///< stopped by SIGINT/SIGTERM

  /// Loop iterations per second of wall time (0 when none were timed).
  double steps_per_second() const {
    return wall_seconds > 0 ? static_cast<double>(iterations) / wall_seconds : 0.0;
  }
};

class DeviceSteps;

class Trainer {
 public:
  /// Trains `model`'s weights in place (their current values are w_0) on `inputs` [n, d]
  /// and `labels` [n] (model's device and dtype). `deltas` [S] are the members' δ, used
  /// for the rescaled time δ^(L−2)·t.
  Trainer(FeedForward model, torch::Tensor inputs, torch::Tensor labels, LossKind loss,
          std::vector<double> deltas, TrainerOptions options);
  ~Trainer();

  /// Installs a hook; hooks run in the order added, after escape and divergence checks.
  void add_hook(std::shared_ptr<TrainHook> hook);
  /// Where metrics rows go (none: no metrics are computed).
  void set_metrics_sink(std::shared_ptr<MetricsSink> sink) { sink_ = std::move(sink); }

  /// Continues from a saved state instead of k = 0: the model must already hold w_k (or
  /// the flow's row weights); interrupted members run again. A gradient-flow state must
  /// carry its FlowRestart.
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
  /// ℓ, ∇ℓ and ‖w‖ at w_k for the active members (`counted`: in state.evaluations).
  void evaluate(TrainState& state, StepStatistics& statistics, bool counted);
  /// Divergence, escape, step budget and interrupt; true when interrupted.
  bool check_stops(TrainState& state) const;
  /// To the next iteration: w_{k+1} = w_k − η∇ℓ(w_k) for the active members, or the flow
  /// integrated to the next row. Returns the loop iterations it took.
  int64_t advance(TrainState& state);
  /// Gradient descent from step k to `until` in one chunk, on the device or in the engine's
  /// threads (the steps between are neither looked at nor logged, except members finishing
  /// there, whose last rows are written as the host loop would have).
  int64_t advance_in_chunk(TrainState& state, int64_t until);
  /// Whether advance may take several steps in one chunk.
  bool steps_in_chunks() const { return device_steps_ || engine_chunks_; }
  /// The next step the host needs: a metrics row, a hook's step, the budget, or
  /// sync_every steps on.
  int64_t next_host_step(const TrainState& state) const;
  /// η, r_esc and stop_at_escape, for the checks inside a chunk of steps.
  StepRule step_rule() const {
    return {options_.step_size(), options_.escape_radius(), options_.stop_at_escape()};
  }
  void check_divergence(TrainState& state) const;
  void check_escape(TrainState& state) const;
  void check_budget(TrainState& state) const;
  bool flows() const { return options_.integrator() == Integrator::gradient_flow; }
  void log_metrics(const TrainState& state);

  FeedForward model_;
  std::unique_ptr<TrainingEngine> engine_;
  std::unique_ptr<GradientFlowStepper> flow_;  // gradient flow only
  std::unique_ptr<DeviceSteps> device_steps_;  // gradient descent with sync_every > 1 only
  bool engine_chunks_ = false;  // gradient descent with sync_every > 1 and engine_->run_steps
  int64_t sync_every_ = 1;
  TrainerOptions options_;
  int64_t total_degree_ = 0;
  std::vector<double> deltas_;
  std::vector<std::shared_ptr<TrainHook>> hooks_;
  std::shared_ptr<MetricsSink> sink_;
  std::optional<TrainState> resume_;
};

}  // namespace ncflab
