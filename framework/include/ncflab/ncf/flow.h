// The NCF gradient flow du/dt = ∇N(u) (SPEC §1), integrated to blow-up, collapse or a stall,
// giving the blow-up time T* and direction u(T*)/‖u(T*)‖ that training is compared with.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <limits>
#include <optional>
#include <vector>

#include "ncflab/ncf/ncf.h"

namespace ncflab {

struct FlowOptions {
  /// Relative tolerance of the local error: of the direction û (against ‖û‖ = 1), of ln‖u‖
  /// (absolute: a relative error of ‖u‖) and of t. Local errors add up over the ~10³ steps
  /// of a flow: 1e-12 gives T* to about 1e-9 (1e-10: about 3e-8 at L = 7).
  TORCH_ARG(double, rtol) = 1e-12;
  /// The direction has converged when the smooth KKT residual ‖∇N(û) − ⟨∇N(û), û⟩û‖/‖∇N(û)‖
  /// is at most this (p = 1 nets: that of the field of the mode it is in, README "The NCF
  /// flow", which vanishes at kinked KKT points too). With N(û) > 0 and L > 2 the flow then
  /// goes on until the rest of the time integral,
  /// ‖u‖^(2−L)/((L−2)·L·N(û)), is below one ulp of t: T* needs no extrapolation. Never
  /// below 10·rtol: once stability rather than accuracy limits the steps, û jitters about
  /// its limit at about rtol.
  TORCH_ARG(double, direction_tol) = 1e-10;
  /// The flow has stalled at a critical point of N (∇N(u) = 0, so N(u) = 0: e.g. dead units)
  /// when ‖∇N(û)‖ falls below this fraction of its largest value along the flow.
  TORCH_ARG(double, stall_tol) = 1e-10;
  /// Not a stop: the flow time at which ‖u‖ first reaches max_norm is reported as
  /// escape_time (for L = 2, which has no T*, the flow's own escape time). 0: none.
  TORCH_ARG(double, max_norm) = 1e4;
  /// Accepted plus rejected steps per member before giving up (status max_steps).
  TORCH_ARG(int64_t, max_steps) = 1'000'000;
  /// Flow time t at which to stop (status max_time); 0: no limit.
  TORCH_ARG(double, max_time) = 0;
  /// Record a trajectory row every this many accepted steps (plus the first and the last).
  TORCH_ARG(int64_t, record_every) = 10;
  /// Per member, increasing flow times at which to keep u(t), by cubic Hermite
  /// interpolation inside the step that passes each (4th-order accurate; the steps taken
  /// do not depend on the times asked for): the trainer compares w(t)/‖w‖ with
  /// u(δ^(L−2)·t) at its log steps. Empty: none. Otherwise one list per member.
  TORCH_ARG(std::vector<std::vector<double>>, sample_times) = {};
  /// On CPU in float64: the field and the stages in per-member loops on the host (false:
  /// batched ATen ops, the path of other devices and dtypes; for tests and benchmarks).
  /// The bookkeeping at kinks runs on the host either way.
  TORCH_ARG(bool, host_loops) = true;
};

/// How the flow of one member ended (SPEC §1: the sign of N* = N(û*) decides).
enum class FlowStatus {
  blew_up,    ///< converged with N* > 0: ‖u‖ → ∞ at t = T* (L > 2; L = 2: as t → ∞)
  collapsed,  ///< converged with N* < 0: u → 0
  stalled,    ///< u converged to a non-zero critical point of N (∇N = 0, N* = 0)
  max_time,   ///< t reached max_time first
  max_steps,  ///< the step budget ran out (or the step size underflowed) first
};

/// "blew_up", "collapsed", "stalled", "max_time", "max_steps".
const char* flow_status_name(FlowStatus status);

/// What the flow of a net with kinks (p = 1, α ≠ 1) met at them: crossings are located
/// (the step retried up to the kink) and the mode changes there (README "The NCF flow").
struct KinkEvents {
  int64_t crossings = 0;  ///< preactivations that crossed their kink
  int64_t entries = 0;    ///< kinks the flow began to slide along
  int64_t exits = 0;      ///< kinks it left again
  int64_t sliding = 0;    ///< kinks it slides along at the end
  /// Crossings it could not locate within 20 retries (accepted as they were): 0 in
  /// every flow we know of; not 0 means the flow is only as accurate as those steps.
  int64_t unlocated = 0;
};

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
  /// T* = ∫ ‖u‖^(−(L−2)) ds integrated in the blow-up-free time s (SPEC §1), plus the
  /// remainder ‖u‖^(2−L)/((L−2)·L·N(û)) once it is below one ulp. NaN unless blew_up with
  /// L > 2 (L = 2 grows exponentially and has no finite blow-up).
  double blowup_time = std::numeric_limits<double>::quiet_NaN();
  /// The t at which ‖u‖ first reached max_norm (cubic Hermite interpolation inside the
  /// step). NaN when it did not, or max_norm is 0.
  double escape_time = std::numeric_limits<double>::quiet_NaN();
  double time = 0;      ///< final t
  double norm = 0;      ///< final ‖u‖ (may overflow to inf for L = 2; see log_norm)
  double log_norm = 0;  ///< final ln‖u‖
  double ncf = 0;       ///< N(û) of the final direction
  double residual = 0;  ///< its smooth KKT residual
  /// ‖∇N(û)‖ at the end over its largest value along the flow: ≤ stall_tol when stalled.
  double gradient_ratio = 0;
  int64_t accepted = 0;             ///< accepted steps
  int64_t rejected = 0;             ///< rejected steps (including those retried to land on a kink)
  std::optional<KinkEvents> kinks;  ///< nets with kinks only
  /// Rows at t = 0, every record_every accepted steps, and at the end.
  std::vector<FlowSample> trajectory;
  /// u at the requested sample_times, [T, P] float64 on CPU; rows past the end of the
  /// flow (past T*, or after it stopped) are NaN. Undefined when no sample times were asked for.
  torch::Tensor samples;
};

struct FlowResult {
  std::vector<FlowMember> members;  ///< one per ensemble member, in input order
  /// Final û = u/‖u‖, [S, P]: at blow-up the converged direction, u(T*)/‖u(T*)‖.
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

/// Integrates du/dt = ∇N(u) from u(0) = u0 [S, P] (P = ncf.parameters(), rows non-zero)
/// in the blow-up-free variables of SPEC §1: the direction û, ln‖u‖ and t, in the time s
/// with ds = ‖u‖^(L−2)·dt, so that blow-up lies at s = ∞ and T* = t(∞) is a convergent
/// integral at every L. Every member has its own step size (Dormand–Prince 5(4), FSAL); all
/// active members share one batched Ncf::evaluate per stage; finished members are frozen.
/// A member runs until its direction converges (blew_up, collapsed or stalled by the sign
/// of N there), or max_time, or max_steps. u0 is converted to the Ncf's dtype and device.
/// Throws c10::Error on bad input or options.
FlowResult integrate_ncf_flow(const Ncf& ncf, const torch::Tensor& u0, const FlowOptions& options,
                              std::function<void(const FlowProgress&)> progress = {});

}  // namespace ncflab
