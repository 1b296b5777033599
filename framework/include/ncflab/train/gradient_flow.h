// Gradient-flow training dw/dt = −∇ℓ(w): Dormand–Prince 5(4) steps with one step size per
// member, the gradients from a training engine, dense output at the trainer's row times and
// the escape crossing located inside the step that makes it.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "ncflab/train/engine.h"
#include "ncflab/train/train_state.h"

namespace ncflab {

struct GradientFlowOptions {
  /// A step is accepted when its local error estimate is at most atol + rtol·‖w‖ (the
  /// member's whole weight vector, the larger ‖w‖ of the step's two ends). rtol is raised
  /// to minimum_rtol of the weights' dtype.
  TORCH_ARG(double, rtol) = 1e-8;
  TORCH_ARG(double, atol) = 0.0;
  /// r_esc: the escape is the first t with ‖w(t)‖ = r_esc, inside the step that crosses it.
  TORCH_ARG(double, escape_radius) = 0.1;
  /// Stop each member at its escape (its last weights are w(t_esc)).
  TORCH_ARG(bool, stop_at_escape) = true;
  /// Accepted steps per member at most.
  TORCH_ARG(int64_t, max_steps) = 100000;
  /// Steps that move w by at most this fraction of ‖w‖ are accepted whatever the error
  /// estimate (p = 1 nets: ∇ℓ jumps at kinks, where no step passes the error test). 0: off.
  TORCH_ARG(double, kink_step) = 0.0;
  /// CPU weights: the stages' arithmetic in per-member loops (no ATen op per stage); false
  /// (or a CUDA device): batched ATen ops, the path CUDA takes.
  TORCH_ARG(bool, host_loops) = true;
};

/// 64 ulps of `dtype` (7.6e-6 for float32, 1.4e-14 for float64): below it the rounding of
/// w at each step, which the error estimate does not see, outweighs the tolerance.
double minimum_rtol(torch::Dtype dtype);

/// Why a member's integration stopped short of the time it was asked to reach.
enum class FlowStop {
  none,     ///< it reached the time (or is frozen)
  escaped,  ///< it stopped at its escape crossing (stop_at_escape)
  budget,   ///< max_steps accepted steps
  failed,   ///< the step size underflowed or the flow stopped being finite
};

/// Where a member's escape crossing lies.
struct FlowCrossing {
  double time = 0;      ///< t_esc, between the ends of the crossing step
  int64_t step = 0;     ///< accepted steps including the crossing one
  torch::Tensor point;  ///< w(t_esc) [P] (dense output)
};

/// A time as an unevaluated sum high + low (double-double): at small δ the escape lies at
/// t ~ T*/δ^(L−2) (1e14 for δ = 1e-8, L = 4) while the last steps before it are O(1) long,
/// beyond a double's 16 digits.
struct CompensatedTime {
  double high = 0;
  double low = 0;
  void add(double h);
  /// (high + low) − t, rounded once.
  double minus(double t) const;
};

/// Integrates the active members of an ensemble; one engine evaluation per stage serves
/// every member taking a step, each with its own step size. The model's weights are the
/// engine's evaluation point: advance() leaves them at each member's row time.
class GradientFlowStepper {
 public:
  /// `weights` are the model's (the engine's) weight tensors [S, k_l, k_{l−1}].
  GradientFlowStepper(TrainingEngine& engine, std::vector<torch::Tensor> weights,
                      GradientFlowOptions options);

  /// Starts every member at the model's current weights, t = 0; counts one evaluation
  /// per member in `evaluations`.
  void start(std::vector<int64_t>& evaluations);
  /// Continues from a checkpoint's record: members with an accepted step take that step
  /// again (uncounted, bit for bit the same), the others start at the record's point.
  /// `state` is the checkpoint's (its active members and step counts).
  void resume(const FlowRestart& saved, const TrainState& state);

  /// Integrates each active member s (state.active) until t_s ≥ targets[s] or it stops,
  /// counting steps and evaluations in `state`; then sets state.times and the model's
  /// weights to each active member's w at its row time (dense output): targets[s], its
  /// escape crossing when it stops there, or its last accepted point otherwise.
  /// Returns the loop's trial rounds (each tries one step for every member still going).
  int64_t advance(TrainState& state, const std::vector<double>& targets);

  /// Why member s stopped in the last advance (none: it reached its target).
  FlowStop stop(int64_t s) const { return members_[static_cast<size_t>(s)].stop; }
  /// Member s's escape crossing, once a step crossed r_esc (its time may lie past the row).
  const std::optional<FlowCrossing>& crossing(int64_t s) const {
    return members_[static_cast<size_t>(s)].crossing;
  }
  /// What a checkpoint keeps (shared, so a finished state can still read the counters).
  std::shared_ptr<const FlowRestart> record() const { return record_; }

 private:
  struct Member {
    CompensatedTime time;          // t of the current accepted point
    CompensatedTime start_time;    // t at the start of the last accepted step
    double step_size = 0;          // h of the next trial
    double last_step = 0;          // h of the last accepted step (0: none yet)
    double last_error = 0;         // its error over the tolerance
    double norm = 0;               // ‖w‖ at the current point
    double speed = 0;              // ‖∇ℓ(w)‖ there
    bool after_rejection = false;  // the last trial was rejected
    bool replay = false;           // the next trial repeats a checkpoint's step, uncounted
    FlowStop stop = FlowStop::none;
    std::optional<FlowCrossing> crossing;
  };
  /// Per member (0 for those not stepping): ‖h·error‖, ‖w_next‖, ‖∇ℓ(w_next)‖ and the
  /// last two stages' slope and point differences (the stiffness estimate), with the
  /// 5th-order points and their slopes, [S, P].
  struct TrialOutcome {
    std::vector<double> error, next_norm, next_speed, slope_change, point_change;
    torch::Tensor next, slope;
  };
  /// Sets every member's current point to the rows of `point` [S, P] with the slope there,
  /// and resets its scalars (time 0, no step yet).
  void begin_at(torch::Tensor point);
  /// One trial step for the members in `stepping`; updates those it accepts.
  void trial(const std::vector<uint8_t>& stepping, TrainState& state);
  /// The trial's stages (gradient_flow_stages.cpp), by the backend host_loops_ picks.
  TrialOutcome stages(const std::vector<uint8_t>& stepping, const std::vector<double>& sizes);
  /// The trial's stages as batched ATen ops (any device).
  TrialOutcome trial_tensors(const std::vector<uint8_t>& stepping,
                             const std::vector<double>& sizes);
  /// The same in per-member loops over contiguous CPU tensors.
  template <typename scalar_t>
  TrialOutcome trial_loops(const std::vector<uint8_t>& stepping, const std::vector<double>& sizes);
  /// Decides member s's trial: accept (moving its point) or reject (shrinking its step).
  bool judge(size_t s, double error, double next_norm, double next_speed, double stiffness,
             bool finite, TrainState& state);
  /// Finds the escape crossing inside member s's last accepted step, if it made one.
  void find_crossing(size_t s, int64_t step);
  /// w at time t inside member s's last accepted step (its point itself at the end).
  torch::Tensor dense(size_t s, double t) const;
  /// −∇ℓ at `point` [S, P] for the members in `mask` (0 on the rows `outside`, [S, 1]
  /// bool): one engine evaluation.
  torch::Tensor slope_at(const torch::Tensor& point, const std::vector<uint8_t>& mask,
                         const torch::Tensor& outside);
  /// The same for every member.
  torch::Tensor slope_everywhere(const torch::Tensor& point);
  void write_weights(const torch::Tensor& flat);

  TrainingEngine& engine_;
  std::vector<torch::Tensor> weights_;
  std::vector<std::vector<int64_t>> shapes_;
  std::vector<int64_t> layer_sizes_;         // k_l·k_{l−1}: one member's share of layer l
  bool host_loops_ = false;                  // trial_loops rather than trial_tensors
  std::vector<torch::Tensor> loop_scratch_;  // trial_loops' scratch, [S, P] each
  GradientFlowOptions options_;
  StepStatistics statistics_;
  torch::Tensor point_;        // [S, P] current accepted points
  torch::Tensor slope_;        // [S, P] −∇ℓ there (FSAL)
  torch::Tensor start_slope_;  // [S, P] −∇ℓ at the start of the last accepted step
  std::vector<Member> members_;
  std::shared_ptr<FlowRestart> record_;  // its `start` rows: the last accepted steps' starts
};

}  // namespace ncflab
