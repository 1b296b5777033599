// The NCF gradient flow du/dt = ∇N(u) (SPEC §1), integrated to blow-up or collapse,
// giving the blow-up time T* and direction u(T*)/‖u(T*)‖ that training is compared with.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <limits>
#include <vector>

#include "ncflab/ncf/ncf.h"

namespace ncflab {

struct FlowOptions {
  /// ‖u‖ past which the flow counts as blown up.
  TORCH_ARG(double, max_norm) = 1e4;
  /// Relative tolerance of the local error, against ‖u‖.
  TORCH_ARG(double, rtol) = 1e-10;
  /// Absolute tolerance of the local error (matters only for tiny ‖u‖).
  TORCH_ARG(double, atol) = 1e-14;
  /// Accepted plus rejected steps per member before giving up (status max_steps).
  TORCH_ARG(int64_t, max_steps) = 1'000'000;
  /// Flow time at which to stop (status max_time); no limit by default.
  TORCH_ARG(double, max_time) = std::numeric_limits<double>::infinity();
  /// Collapse when ‖u‖ < collapse_norm_ratio·‖u0‖.
  TORCH_ARG(double, collapse_norm_ratio) = 1e-3;
  /// Also collapse when N(û) ≤ 0 and ‖du/dt‖/‖u‖ < stall_rate (per unit flow time): the
  /// direction froze while the norm is not growing.
  TORCH_ARG(double, stall_rate) = 1e-12;
  /// Record a trajectory row every this many accepted steps (plus the first and the last).
  TORCH_ARG(int64_t, record_every) = 10;
  /// p = 1 nets only (ignored for p > 1): steps that move u by at most this fraction of
  /// ‖u‖ are accepted whatever the error estimate, since ∇N jumps at kinks and the flow
  /// slides along them, where no step passes the error test. 0: off.
  TORCH_ARG(double, kink_step) = 0.0;
  /// Per member, increasing flow times at which to keep u(t), by cubic Hermite
  /// interpolation inside the step that passes each (4th-order accurate; the steps taken
  /// do not depend on the times asked for): the trainer compares w(t)/‖w‖ with
  /// u(δ^(L−2)·t) at its log steps. Empty: none. Otherwise one list per member.
  TORCH_ARG(std::vector<std::vector<double>>, sample_times) = {};
};

/// How the flow of one member ended.
enum class FlowStatus {
  blew_up,  ///< ‖u‖ reached max_norm
  collapsed,  ///< ‖u‖ shrank below collapse_norm_ratio·‖u0‖, or the flow stalled at N(û) ≤ 0
  max_time,   ///< t reached max_time first
  max_steps,  ///< the step budget ran out (or the step size underflowed) first
};

/// "blew_up", "collapsed", "max_time", "max_steps".
const char* flow_status_name(FlowStatus status);

/// One recorded point of a trajectory.
struct FlowSample {
  double time = 0;      ///< flow time t
  double norm = 0;      ///< ‖u(t)‖
  double ncf = 0;       ///< N(û), û = u/‖u‖
  double residual = 0;  ///< smooth KKT residual of û
};

/// The outcome for one ensemble member.
struct FlowMember {
  FlowStatus status = FlowStatus::max_steps;
  /// T* extrapolated from the max_norm crossing (t, u, û there), SPEC §1:
  /// T* = t + ‖u‖^(2−L) / ((L−2)·L·N(û)). NaN unless blew_up with L > 2 (L = 2 grows
  /// exponentially and has no finite blow-up).
  double blowup_time = std::numeric_limits<double>::quiet_NaN();
  /// The t at which ‖u‖ reached max_norm (cubic Hermite interpolation inside the last
  /// step). NaN unless blew_up.
  double escape_time = std::numeric_limits<double>::quiet_NaN();
  double time = 0;  ///< final t (the end of the last step)
  double norm = 0;  ///< final ‖u‖ (the end of the last step)
  /// N(û) of the final direction: at blow-up, at the max_norm crossing (see direction).
  double ncf = 0;
  double residual = 0;   ///< smooth KKT residual of that direction
  int64_t accepted = 0;  ///< accepted steps
  int64_t rejected = 0;  ///< rejected steps
  /// Rows at t = 0, every record_every accepted steps, and at the end.
  std::vector<FlowSample> trajectory;
  /// u at the requested sample_times, [T, P] float64 on CPU; rows past the end of the
  /// flow (blow-up, collapse) are NaN. Undefined when no sample times were asked for.
  torch::Tensor samples;
};

struct FlowResult {
  std::vector<FlowMember> members;  ///< one per ensemble member, in input order
  /// Final û = u/‖u‖, [S, P]. At blow-up, û where ‖u‖ crossed max_norm (cubic Hermite
  /// interpolation inside the last step): the stand-in for u(T*)/‖u(T*)‖, defined by
  /// max_norm rather than by how far the last step overshot it.
  torch::Tensor direction;
  int64_t total_degree = 0;  ///< L of the net
};

/// Passed to the progress callback every 20 batched steps (flow_progress_printer throttles).
struct FlowProgress {
  int64_t accepted = 0;  ///< accepted steps of the member furthest along
  int64_t active = 0;    ///< members still integrating
  double time = 0;       ///< largest t among the members
  double norm = 0;       ///< largest ‖u‖ among the members
};

/// A progress callback printing one line to `out` at most every `interval_seconds`.
std::function<void(const FlowProgress&)> flow_progress_printer(std::ostream& out,
                                                               double interval_seconds);

/// Integrates du/dt = ∇N(u) from u(0) = u0 [S, P] (P = ncf.parameters(), rows non-zero),
/// every member with its own step size, by Dormand–Prince 5(4) with FSAL; the local error
/// per member is kept below atol + rtol·‖u‖ (2-norm over P). All active members share one
/// batched Ncf::evaluate per stage; finished members are frozen. u0 is converted to the
/// Ncf's dtype and device. Throws c10::Error on bad input or options.
FlowResult integrate_ncf_flow(const Ncf& ncf, const torch::Tensor& u0, const FlowOptions& options,
                              std::function<void(const FlowProgress&)> progress = {});

}  // namespace ncflab
