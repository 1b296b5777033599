// The per-member bookkeeping of the NCF-flow integrator (internal): the scalars kept on the
// host, the last accepted step's scalar interpolants, and when and why a member stops.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "flow_kinks.h"
#include "ncflab/ncf/flow.h"

namespace ncflab::flow_detail {

/// A sum kept as an unevaluated pair high + low (Neumaier): t adds up ~1e3–1e5 increments
/// whose rounding would otherwise cost T* its last digits.
struct CompensatedSum {
  double high = 0;
  double low = 0;
  void add(double x);
  double value() const { return high + low; }
};

/// A scalar component over the last accepted step: its values and s-slopes at both ends,
/// for the cubic Hermite interpolant (4th-order accurate, like the step's error estimate).
struct ScalarStep {
  double start = 0;
  double start_slope = 0;
  double end = 0;
  double end_slope = 0;
  /// The value at fraction θ ∈ [0, 1] of a step of length h.
  double at(double h, double theta) const;
  /// The first θ ∈ [0, 1] at which the interpolant reaches `target` (between start and end),
  /// by bisection: the interpolant of a monotone component is monotone near enough.
  double fraction_reaching(double h, double target) const;
};

// Per-member scalars, kept on the host: one small transfer per step decides everything.
struct MemberState {
  CompensatedSum time;          // t
  double h = 0;                 // next step size in s
  double log_norm = 0;          // ρ = ln‖u‖
  double value = 0;             // N(û)
  double gradient = 0;          // ‖∇N(û)‖
  double tangent = 0;           // ‖∇N(û) − ⟨∇N(û), û⟩û‖: the speed of û in s
  double largest_gradient = 0;  // max ‖∇N(û)‖ along the flow (stall test)
  bool converged = false;       // the direction has converged (set by the integrator)
  int64_t accepted = 0;
  int64_t rejected = 0;
  int64_t last_recorded = -1;  // accepted count of the last trajectory row
  bool active = true;
  size_t next_sample = 0;  // index of the next sample time not yet reached
  double escape_time = std::numeric_limits<double>::quiet_NaN();  // ‖u‖ = max_norm
  // Nets with kinks: steps retried since the last accepted one to land on a kink, the step
  // size to resume with after landing, and what happened at kinks.
  int64_t landings = 0;
  double resume_step = 0;
  std::vector<Kink> landing_targets;
  KinkEvents kinks;
  // The last accepted step: its size in s, t at its start, the t it added, and ρ in it.
  double step = 0;
  double step_start_time = 0;
  double step_time = 0;
  ScalarStep log_norm_step;
};

/// τ = t − t_step_start at fraction θ of the last accepted step: τ_end·Q(θ)/Q(1) with
/// Q(θ) = ∫_0^θ e^(−(L−2)(ρ(σ)−ρ_0)) dσ by Gauss–Legendre on ρ's interpolant. τ' varies by
/// e^((L−2)Δρ) inside a step, more than a cubic in τ follows; ρ itself is nearly linear.
double time_in_step(const MemberState& m, double total_degree, double theta);

/// The θ ∈ [0, 1] at which τ (time_in_step) reaches `target` ∈ [0, τ_end], by bisection.
double fraction_at_time(const MemberState& m, double total_degree, double target);

/// options.max_time(), or inf for 0 (no limit).
double effective_max_time(const FlowOptions& options);

/// The rest of the time integral past the current point on its KKT ray,
/// ‖u‖^(2−L)/((L−2)·L·N(û)) (SPEC §1); inf unless N(û) > 0 and L > 2.
double remaining_time(const MemberState& m, double total_degree);

/// Why a member stops after its last accepted step (or at the start), if it does: a blow-up
/// runs until ‖u‖ passed max_norm and the rest of t's integral is below one ulp.
std::optional<FlowStatus> stop_reason(const MemberState& m, const FlowOptions& options,
                                      double total_degree);

/// ‖u‖ at flow time `time` ≥ t on the KKT ray the member has converged to (N(û) > 0):
/// r^(2−L) − (L−2)·L·N·(time − t) = ‖u‖^(2−L) for L > 2, ln‖u‖ = ρ + 2N·(time − t) for
/// L = 2. NaN past T*.
double ray_norm(const MemberState& m, double total_degree, double time);

/// The flow time at which ‖u‖ = `norm` on that ray (≥ t for norm ≥ ‖u‖).
double ray_time(const MemberState& m, double total_degree, double norm);

/// Fills a member's report from its final state.
void finish(const MemberState& m, FlowStatus status, double total_degree, FlowMember& out);

}  // namespace ncflab::flow_detail
