// The NCF-flow integrator at kinks (flow_integrator.h, flow_kinks.h): a step that leaves its
// member's mode beyond the tolerance is retried up to where it leaves, and the mode is
// settled at the point the retried step lands on.
#include <algorithm>
#include <cmath>
#include <optional>

#include "flow_integrator.h"

namespace ncflab::flow_detail {

// Of the members whose step passed the error test (`passed`, indices into the trial), those
// that left their mode beyond the tolerance retry the step up to the first such departure:
// their next step size lands on it. Returns which active members retry; `departures` gets
// where the others' new points left their modes (within the tolerance).
std::vector<bool> FlowIntegrator::locate_departures(
    const TrialStep& trial, const std::vector<size_t>& passed,
    std::vector<std::optional<std::vector<Departure>>>& departures) {
  const HostRows ends(trial.next);
  const HostRows starts(trial.start);
  std::vector<std::vector<Departure>> found;
  for (const size_t a : passed) {
    const auto i = static_cast<int64_t>(a);
    found.push_back(kinked_->departures(ends[i], modes_[static_cast<size_t>(trial.active[a])]));
  }
  std::vector<bool> retried(trial.active.size(), false);
  for (size_t k = 0; k < passed.size(); ++k) {
    const size_t a = passed[k];
    auto& m = states_[static_cast<size_t>(trial.active[a])];
    const double tolerance = kinked_->tolerance();
    std::vector<Kink> beyond;
    std::vector<double> start_margins;
    std::vector<double> end_margins;
    for (const auto& departure : found[k]) {
      if (departure.margin < -tolerance) {
        beyond.push_back(departure.kink);
        end_margins.push_back(departure.margin);
      }
    }
    if (!beyond.empty()) {
      // A kink that began the step on its wrong side (settled there: nothing pushed it) has
      // left only once it moved a tolerance further.
      const auto start = kinked_->margins(starts[static_cast<int64_t>(a)],
                                          modes_[static_cast<size_t>(trial.active[a])], beyond);
      std::vector<Kink> left;
      std::vector<double> left_start;
      std::vector<double> left_end;
      for (size_t b = 0; b < beyond.size(); ++b) {
        if (end_margins[b] < std::min(start[b], 0.0) - tolerance) {
          left.push_back(beyond[b]);
          left_start.push_back(start[b]);
          left_end.push_back(end_margins[b]);
        }
      }
      beyond = std::move(left);
      start_margins = std::move(left_start);
      end_margins = std::move(left_end);
    }
    if (beyond.empty() || m.landings > kMaxLandings) {
      departures[a] = std::move(found[k]);
      continue;
    }
    const double fraction = departure_fraction(trial, a, beyond, start_margins, end_margins);
    if (m.landings == 0) m.resume_step = trial.step_sizes[a];
    m.landing_targets = beyond;
    m.h = trial.step_sizes[a] * fraction;
    ++m.landings;
    ++m.rejected;
    retried[a] = true;
  }
  return retried;
}

// The first fraction θ of active member a's step at which one of `kinks` leaves the mode (its
// margin falls below its value at the start, or 0; both ends' margins given), on the step's
// interpolant: bisection to
// a bracket of 1/64, then regula falsi (Illinois) on the kink that leaves first. Returns the
// end of the final bracket just past the root, so the retried step lands within the
// tolerance on the far side.
double FlowIntegrator::departure_fraction(const TrialStep& trial, size_t a,
                                          const std::vector<Kink>& kinks,
                                          const std::vector<double>& start_margins,
                                          std::vector<double> end_margins) {
  auto& mode = modes_[static_cast<size_t>(trial.active[a])];
  std::vector<double> point;
  const auto at = [&](double theta) {
    trial.inside(a, theta, point);
    return kinked_->margins(point.data(), mode, kinks);
  };
  // Where each kink leaves: its margin crosses 0, or for one that began on its wrong side,
  // half a tolerance below where it began.
  std::vector<double> thresholds;
  for (const double start : start_margins) {
    thresholds.push_back(start < 0 ? start - 0.5 * kinked_->tolerance() : 0.0);
  }
  // The first kink below its threshold at θ, or none.
  const auto first_departed = [&](const std::vector<double>& margins) -> std::optional<size_t> {
    std::optional<size_t> first;
    for (size_t k = 0; k < kinks.size(); ++k) {
      const double below = margins[k] - thresholds[k];
      if (below < 0 && (!first || below < margins[*first] - thresholds[*first])) first = k;
    }
    return first;
  };
  double low = 0;
  double high = 1;
  auto margins_low = start_margins;
  auto margins_high = std::move(end_margins);  // θ = 1 is the trial's end point
  while (high - low > 1.0 / 64) {
    const double middle = 0.5 * (low + high);
    auto margins = at(middle);
    if (first_departed(margins)) {
      high = middle;
      margins_high = std::move(margins);
    } else {
      low = middle;
      margins_low = std::move(margins);
    }
  }
  auto kink = first_departed(margins_high);
  if (!kink) return high;
  // Illinois on g(θ) = margin − threshold of that kink: g(low) ≥ 0 > g(high).
  const auto g = [&](const std::vector<double>& margins) {
    return margins[*kink] - thresholds[*kink];
  };
  double g_low = g(margins_low);
  double g_high = g(margins_high);
  int side = 0;
  for (int iteration = 0; iteration < 60 && high - low > 1e-15; ++iteration) {
    double theta = (low * g_high - high * g_low) / (g_high - g_low);
    if (!(theta > low && theta < high)) theta = 0.5 * (low + high);
    const auto margins = at(theta);
    if (const auto other = first_departed(margins)) {
      high = theta;
      if (*other != *kink) {  // another kink leaves first: follow that one
        kink = other;
        g_low = g(margins_low);
        side = 0;
      }
      g_high = g(margins);
      if (side == -1) g_low *= 0.5;
      side = -1;
    } else {
      low = theta;
      margins_low = margins;
      g_low = g(margins);
      if (side == 1) g_high *= 0.5;
      side = 1;
    }
    // Converged in margin: the interpolant's own accuracy is far coarser.
    if (std::abs(g_high) <= 1e-3 * kinked_->tolerance()) break;
  }
  return high;
}

// The new modes of the members just accepted, where they left theirs within the tolerance;
// a member whose mode changed gets its slope (the next step's first stage) and scalars anew.
void FlowIntegrator::settle_modes(const std::vector<int64_t>& members,
                                  const std::vector<std::optional<std::vector<Departure>>>& known) {
  const HostRows rows(y_.index_select(0, index_tensor(members, y_.device())));
  std::vector<int64_t> changed;
  for (size_t k = 0; k < members.size(); ++k) {
    const double* row = rows[static_cast<int64_t>(k)];
    auto& mode = modes_[static_cast<size_t>(members[k])];
    const auto departures = known[k] ? *known[k] : kinked_->departures(row, mode);
    // Settled: the kinks on the wrong side within the tolerance, and those the step just
    // landed on (which may lie a rounding short of theirs, or further on the wrong side).
    auto& m = states_[static_cast<size_t>(members[k])];
    std::vector<Kink> kinks;
    const double tolerance = kinked_->tolerance();
    for (const auto& departure : departures) {
      const bool near = departure.margin < 0 && departure.margin >= -tolerance;
      if (near || std::find(m.landing_targets.begin(), m.landing_targets.end(), departure.kink) !=
                      m.landing_targets.end()) {
        kinks.push_back(departure.kink);
      }
    }
    m.landing_targets.clear();
    if (kinks.empty()) continue;
    const auto settling = kinked_->settle(row, mode, kinks);
    m.kinks.crossings += settling.crossings;
    m.kinks.entries += settling.entries;
    m.kinks.exits += settling.exits;
    if (settling.changed) changed.push_back(members[k]);
  }
  if (changed.empty()) return;
  const auto index = index_tensor(changed, y_.device());
  torch::Tensor statistics;
  slope_.index_copy_(0, index, derivative(y_.index_select(0, index), changed, &statistics));
  const auto host = statistics.to(torch::kCPU, torch::kFloat64);
  const auto at = host.accessor<double, 2>();
  for (size_t k = 0; k < changed.size(); ++k) {
    auto& m = states_[static_cast<size_t>(changed[k])];
    const auto i = static_cast<int64_t>(k);
    m.value = at[0][i];
    m.gradient = at[1][i];
    m.tangent = at[2][i];
    m.largest_gradient = std::max(m.largest_gradient, m.gradient);
  }
}

}  // namespace ncflab::flow_detail
