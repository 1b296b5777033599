// Per-member bookkeeping of the NCF-flow integrator: the compensated time, the scalar
// interpolants of a step, the stop rules (SPEC §1's three outcomes) and the final report.
#include "flow_member.h"

#include <cmath>

namespace ncflab::flow_detail {

void CompensatedSum::add(double x) {
  const double sum = high + x;
  low += std::abs(high) >= std::abs(x) ? (high - sum) + x : (x - sum) + high;
  high = sum;
}

double ScalarStep::at(double h, double theta) const {
  const double c = 1 - theta;
  return (1 + 2 * theta) * c * c * start + theta * c * c * h * start_slope +
         theta * theta * (3 - 2 * theta) * end - theta * theta * c * h * end_slope;
}

double ScalarStep::fraction_reaching(double h, double target) const {
  const bool rising = end >= start;
  double low = 0;
  double high = 1;
  for (int i = 0; i < 64; ++i) {
    const double mid = 0.5 * (low + high);
    ((at(h, mid) < target) == rising ? low : high) = mid;
  }
  return high;
}

namespace {

// 8-point Gauss–Legendre on [0, 1]: nodes and weights.
constexpr double kNodes[8] = {0.019855071751231912, 0.10166676129318664, 0.2372337950418355,
                              0.4082826787521751,   0.5917173212478248,  0.7627662049581645,
                              0.8983332387068134,   0.9801449282487681};
constexpr double kWeights[8] = {0.050614268145188344, 0.11119051722668717, 0.15685332293894352,
                                0.18134189168918088,  0.18134189168918088, 0.15685332293894352,
                                0.11119051722668717,  0.050614268145188344};

// Q(θ)/h = ∫_0^θ e^(−(L−2)(ρ(σ)−ρ_0)) dσ over the step's fraction σ.
double time_weight(const MemberState& m, double total_degree, double theta) {
  double sum = 0;
  for (int i = 0; i < 8; ++i) {
    const double sigma = theta * kNodes[i];
    const double rise = m.log_norm_step.at(m.step, sigma) - m.log_norm_step.start;
    sum += kWeights[i] * std::exp(-(total_degree - 2) * rise);
  }
  return theta * sum;
}

}  // namespace

double time_in_step(const MemberState& m, double total_degree, double theta) {
  if (theta >= 1) return m.step_time;
  return m.step_time * time_weight(m, total_degree, theta) / time_weight(m, total_degree, 1);
}

double fraction_at_time(const MemberState& m, double total_degree, double target) {
  double low = 0;
  double high = 1;
  for (int i = 0; i < 64; ++i) {
    const double mid = 0.5 * (low + high);
    (time_in_step(m, total_degree, mid) < target ? low : high) = mid;
  }
  return high;
}

double effective_max_time(const FlowOptions& options) {
  return options.max_time() > 0 ? options.max_time() : std::numeric_limits<double>::infinity();
}

double remaining_time(const MemberState& m, double total_degree) {
  if (!(total_degree > 2) || !(m.value > 0)) return std::numeric_limits<double>::infinity();
  return std::exp(-(total_degree - 2) * m.log_norm) / ((total_degree - 2) * total_degree * m.value);
}

double ray_norm(const MemberState& m, double total_degree, double time) {
  const double elapsed = time - m.time.value();
  if (total_degree <= 2) return std::exp(m.log_norm + total_degree * m.value * elapsed);
  const double power = std::exp(-(total_degree - 2) * m.log_norm) -
                       (total_degree - 2) * total_degree * m.value * elapsed;
  return power > 0 ? std::pow(power, -1 / (total_degree - 2))
                   : std::numeric_limits<double>::quiet_NaN();
}

double ray_time(const MemberState& m, double total_degree, double norm) {
  const double rise = std::log(norm) - m.log_norm;
  if (total_degree <= 2) return m.time.value() + rise / (total_degree * m.value);
  return m.time.value() + remaining_time(m, total_degree) * -std::expm1(-(total_degree - 2) * rise);
}

std::optional<FlowStatus> stop_reason(const MemberState& m, const FlowOptions& options,
                                      double total_degree) {
  if (m.time.value() >= effective_max_time(options)) return FlowStatus::max_time;
  // ∇N(û) gone while û is still a unit vector: u sits at a critical point of N, whose
  // Euler identity ⟨∇N(u), u⟩ = L·N(u) makes N = 0 there.
  if (!(m.gradient > options.stall_tol() * m.largest_gradient)) return FlowStatus::stalled;
  if (m.converged) {
    if (m.value < 0) return FlowStatus::collapsed;
    // Blow-up: once the direction stands still, t still has the tail of its integral to
    // go; stop when that tail is below one ulp of t, so T* carries no extrapolation.
    const double tail = remaining_time(m, total_degree);
    // Both wait for ‖u‖ to pass max_norm, so that escape_time, the only time scale at
    // L = 2, is always known.
    const bool escaped = !std::isnan(m.escape_time) || !(options.max_norm() > 0);
    if (escaped && (total_degree <= 2 || tail <= 0x1p-53 * m.time.value())) {
      return FlowStatus::blew_up;
    }
  }
  // A step size that underflowed can never finish: report it as running out of steps.
  if (m.accepted + m.rejected >= options.max_steps() ||
      !(m.h >= std::numeric_limits<double>::min()) || !std::isfinite(m.log_norm)) {
    return FlowStatus::max_steps;
  }
  return std::nullopt;
}

void finish(const MemberState& m, FlowStatus status, double total_degree, FlowMember& out) {
  out.status = status;
  out.time = m.time.value();
  out.log_norm = m.log_norm;
  out.norm = std::exp(m.log_norm);
  out.ncf = m.value;
  out.residual = m.gradient > 0 ? m.tangent / m.gradient : 0.0;
  out.gradient_ratio = m.largest_gradient > 0 ? m.gradient / m.largest_gradient : 0.0;
  out.accepted = m.accepted;
  out.rejected = m.rejected;
  out.escape_time = m.escape_time;
  if (status == FlowStatus::blew_up && total_degree > 2) {
    out.blowup_time = out.time + remaining_time(m, total_degree);
  }
}

}  // namespace ncflab::flow_detail
