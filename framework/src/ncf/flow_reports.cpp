// What the NCF flow reports per member (flow_integrator.h): u at the requested sample times,
// trajectory rows, the KKT-ray closure of a converged blow-up and the final report.
#include <cmath>

#include "flow_integrator.h"

namespace ncflab::flow_detail {

// u = e^ρ·v/‖v‖ from a row of y.
torch::Tensor FlowIntegrator::weights_at(const torch::Tensor& y_row) const {
  const auto v = y_row.narrow(0, 0, columns_.parameters);
  return (v / v.norm()) * y_row[columns_.log_norm()].exp();
}

// The sample times this accepted step passed, by interpolation inside it.
void FlowIntegrator::keep_samples(MemberState& m, const TrialStep& trial, size_t a) {
  if (options_.sample_times().empty()) return;
  const auto member = static_cast<size_t>(trial.active[a]);
  const auto& times = options_.sample_times()[member];
  auto& samples = result_.members[member].samples;
  const double end = std::min(m.time.value(), max_time_);
  for (; m.next_sample < times.size() && times[m.next_sample] <= end; ++m.next_sample) {
    const double theta =
        fraction_at_time(m, total_degree_, times[m.next_sample] - m.step_start_time);
    samples[static_cast<int64_t>(m.next_sample)].copy_(weights_at(trial.inside(a, theta)));
  }
}

void FlowIntegrator::record(int64_t member) {
  auto& m = states_[static_cast<size_t>(member)];
  result_.members[static_cast<size_t>(member)].trajectory.push_back(
      {m.time.value(), std::exp(m.log_norm), m.value,
       m.gradient > 0 ? m.tangent / m.gradient : 0.0});
  m.last_recorded = m.accepted;
}

// The escape time and the samples past the last step, on the KKT ray of a converged blow-up
// (for smooth nets only samples within one ulp of T* are left).
void FlowIntegrator::close_along_ray(MemberState& m, int64_t member) {
  if (std::isnan(m.escape_time) && std::isfinite(log_max_norm_)) {
    m.escape_time = ray_time(m, total_degree_, std::exp(log_max_norm_));
  }
  if (options_.sample_times().empty()) return;
  const auto& times = options_.sample_times()[static_cast<size_t>(member)];
  auto& samples = result_.members[static_cast<size_t>(member)].samples;
  const auto v = y_[member].narrow(0, 0, columns_.parameters);
  const auto direction = (v / v.norm()).to(torch::kCPU, torch::kFloat64);
  for (; m.next_sample < times.size(); ++m.next_sample) {
    const double norm = ray_norm(m, total_degree_, times[m.next_sample]);
    if (!std::isfinite(norm)) break;  // past T*
    samples[static_cast<int64_t>(m.next_sample)].copy_(norm * direction);
  }
}

// Stops the member if it is done: its last row, its report.
void FlowIntegrator::conclude(int64_t member) {
  auto& m = states_[static_cast<size_t>(member)];
  if (!m.active) return;
  const auto reason = stop_reason(m, options_, total_degree_);
  if (!reason) return;
  m.active = false;
  if (m.last_recorded != m.accepted) record(member);
  if (*reason == FlowStatus::blew_up) close_along_ray(m, member);
  auto& report = result_.members[static_cast<size_t>(member)];
  finish(m, *reason, total_degree_, report);
  if (kinked_) {
    report.kinks = m.kinks;
    report.kinks->sliding =
        static_cast<int64_t>(modes_[static_cast<size_t>(member)].sliding.size());
  }
}

}  // namespace ncflab::flow_detail
