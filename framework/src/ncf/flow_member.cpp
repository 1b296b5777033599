// Per-member bookkeeping of the NCF-flow integrator: stop rules, the max_norm crossing,
// trajectory rows and the final report of each member (SPEC §1 T*).
#include "flow_member.h"

#include <cmath>
#include <limits>

namespace ncflab::flow_detail {

size_t samples_reached(const MemberState& m, const FlowOptions& options, size_t member) {
  if (options.sample_times().empty()) return m.next_sample;
  const auto& times = options.sample_times()[member];
  size_t end = m.next_sample;
  while (end < times.size() && times[end] <= m.time) ++end;
  return end;
}

torch::Tensor index_tensor(const std::vector<int64_t>& ids, const torch::Device& device) {
  return torch::tensor(ids, torch::kLong).to(device);
}

std::optional<FlowStatus> stop_reason(const MemberState& m, const FlowOptions& options) {
  if (m.norm >= options.max_norm()) return FlowStatus::blew_up;
  // d‖u‖/dt = L·N(u)/‖u‖ (Euler), so N ≤ 0 means the norm is not growing.
  if (m.norm < options.collapse_norm_ratio() * m.initial_norm ||
      (m.value <= 0 && m.speed <= options.stall_rate() * m.norm)) {
    return FlowStatus::collapsed;
  }
  if (m.time >= options.max_time()) return FlowStatus::max_time;
  // A step size that underflowed can never finish: report it as running out of steps.
  if (m.accepted + m.rejected >= options.max_steps() ||
      !(m.h >= std::numeric_limits<double>::min())) {
    return FlowStatus::max_steps;
  }
  return std::nullopt;
}

double crossing_time(double total_degree, const MemberState& m, double target) {
  const double t0 = m.previous_time;
  const double h = m.time - t0;
  const double r0 = m.previous_norm;
  const double r1 = m.norm;
  const double d0 = h * total_degree * m.previous_value / r0;
  const double d1 = h * total_degree * m.value / r1;
  const auto radius = [&](double s) {
    const double c = 1 - s;
    return (1 + 2 * s) * c * c * r0 + s * c * c * d0 + s * s * (3 - 2 * s) * r1 - s * s * c * d1;
  };
  // r(0) < target ≤ r(1): bisection always brackets a root of the interpolant.
  double low = 0;
  double high = 1;
  for (int i = 0; i < 64; ++i) {
    const double mid = 0.5 * (low + high);
    (radius(mid) < target ? low : high) = mid;
  }
  return t0 + high * h;
}

void record(const Ncf& ncf, const torch::Tensor& u, const std::vector<int64_t>& ids,
            std::vector<MemberState>& states, FlowResult& result) {
  if (ids.empty()) return;
  const auto unit = unit_rows(u.index_select(0, index_tensor(ids, u.device())));
  const auto stats =
      torch::stack({ncf.value(unit), ncf.smooth_residual(unit)}).to(torch::kCPU, torch::kFloat64);
  const auto at = stats.accessor<double, 2>();
  for (size_t i = 0; i < ids.size(); ++i) {
    auto& m = states[ids[i]];
    result.members[ids[i]].trajectory.push_back(
        {m.time, m.norm, at[0][static_cast<int64_t>(i)], at[1][static_cast<int64_t>(i)]});
    m.last_recorded = m.accepted;
  }
}

void finish(const Ncf& ncf, const MemberState& m, FlowStatus status, double total_degree,
            const std::optional<Crossing>& crossing, FlowMember& out) {
  out.status = status;
  out.time = m.time;
  out.norm = m.norm;
  out.ncf = out.trajectory.back().ncf;
  out.residual = out.trajectory.back().residual;
  out.accepted = m.accepted;
  out.rejected = m.rejected;
  if (status != FlowStatus::blew_up) return;
  double time = m.time;
  double norm = m.norm;
  if (crossing) {
    time = crossing->time;
    norm = crossing->u.norm().item<double>();
    const auto unit = unit_rows(crossing->u.unsqueeze(0));
    out.ncf = ncf.value(unit).item<double>();
    out.residual = ncf.smooth_residual(unit).item<double>();
  }
  out.escape_time = time;
  if (total_degree > 2 && out.ncf > 0) {
    // SPEC §1: T* ≈ t + ‖u‖^(2−L)/((L−2)·L·N(û)); exact on a KKT ray.
    out.blowup_time =
        time + std::pow(norm, 2 - total_degree) / ((total_degree - 2) * total_degree * out.ncf);
  }
}

}  // namespace ncflab::flow_detail
