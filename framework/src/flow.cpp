// Dormand–Prince 5(4) integration of the NCF gradient flow, batched over an ensemble with
// one step size per member, and the blow-up bookkeeping of SPEC §1 (T*, escape, collapse).
#include "ncflab/flow.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <optional>
#include <chrono>
#include <map>
#include <memory>
#include <ostream>

#include <fmt/format.h>

namespace ncflab {
namespace {

// Dormand & Prince (1980): row i builds stage i+2 from stages 1…i+1. The last row is the
// 5th-order solution itself, so its stage (the gradient at the new point) is the first
// stage of the next step (FSAL).
constexpr std::array<std::array<double, 6>, 6> kStages = {{
    {1.0 / 5},
    {3.0 / 40, 9.0 / 40},
    {44.0 / 45, -56.0 / 15, 32.0 / 9},
    {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729},
    {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656},
    {35.0 / 384, 0.0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84},
}};
// 5th-order minus embedded 4th-order weights, stages 1…7: the local error estimate.
constexpr std::array<double, 7> kError = {71.0 / 57600,      0.0,        -71.0 / 16695, 71.0 / 1920,
                                          -17253.0 / 339200, 22.0 / 525, -1.0 / 40};
// Step-size controller: h ← h·clamp(safety·err^(−1/5), min, max) (order 4 of the estimate).
constexpr double kSafety = 0.9;
constexpr double kMinFactor = 0.2;
constexpr double kMaxFactor = 5.0;
// First step moves u by this fraction of ‖u0‖; the controller takes over from there.
constexpr double kFirstStepFraction = 1e-3;
constexpr int64_t kProgressEvery = 20;  // callers throttle by time (flow_progress_printer)

// Per-member scalars, kept on the host: one small transfer per step decides everything.
struct MemberState {
  double time = 0;
  double step = 0;   // next step size h
  double norm = 0;   // ‖u‖
  double value = 0;  // N(u), not N(û)
  double speed = 0;  // ‖∇N(u)‖ = ‖du/dt‖
  double initial_norm = 0;
  int64_t accepted = 0;
  int64_t rejected = 0;
  int64_t last_recorded = -1;  // accepted count of the last trajectory row
  bool active = true;
  size_t next_sample = 0;  // index of the next sample time not yet reached
  // State before the last accepted step, for locating the max_norm crossing inside it.
  double previous_time = 0;
  double previous_norm = 0;
  double previous_value = 0;
};

void check_options(const FlowOptions& options) {
  TORCH_CHECK(options.max_norm() > 0, "integrate_ncf_flow – max_norm must be > 0 – got ",
              options.max_norm());
  TORCH_CHECK(options.rtol() >= 0 && options.rtol() < 1,
              "integrate_ncf_flow – rtol must be in [0, 1) – got ", options.rtol());
  TORCH_CHECK(options.atol() >= 0, "integrate_ncf_flow – atol must be >= 0 – got ", options.atol());
  TORCH_CHECK(options.rtol() > 0 || options.atol() > 0,
              "integrate_ncf_flow – rtol and atol must not both be 0 – got rtol ", options.rtol(),
              ", atol ", options.atol());
  TORCH_CHECK(options.max_steps() >= 1, "integrate_ncf_flow – max_steps must be >= 1 – got ",
              options.max_steps());
  TORCH_CHECK(options.max_time() > 0, "integrate_ncf_flow – max_time must be > 0 – got ",
              options.max_time());
  TORCH_CHECK(options.collapse_norm_ratio() >= 0 && options.collapse_norm_ratio() < 1,
              "integrate_ncf_flow – collapse_norm_ratio must be in [0, 1) – got ",
              options.collapse_norm_ratio());
  TORCH_CHECK(options.stall_rate() >= 0, "integrate_ncf_flow – stall_rate must be >= 0 – got ",
              options.stall_rate());
  TORCH_CHECK(options.min_relative_step() >= 0 && options.min_relative_step() < 1,
              "integrate_ncf_flow – min_relative_step must be in [0, 1) – got ",
              options.min_relative_step());
  TORCH_CHECK(options.record_every() >= 1, "integrate_ncf_flow – record_every must be >= 1 – got ",
              options.record_every());
}

// u at fraction s of the step from u0 (slope k0) to u1 (slope k1) of length h: the cubic
// Hermite interpolant, 4th-order accurate like the norm's.
torch::Tensor hermite(const torch::Tensor& u0, const torch::Tensor& k0, const torch::Tensor& u1,
                      const torch::Tensor& k1, double h, double s) {
  const double c = 1 - s;
  return (1 + 2 * s) * c * c * u0 + s * c * c * h * k0 + s * s * (3 - 2 * s) * u1 - s * s * c * h * k1;
}

// The sample times a member has passed now, [next_sample, end): filled by interpolation
// inside the step that passed them, so sampling never changes the steps the flow takes
// (and a member's flow is the same whatever times it is asked for).
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

// Why a member stops now, if it does. Blow-up wins over everything else; an accepted step
// that lands past max_norm is the blow-up, whatever the step count.
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
      !(m.step >= std::numeric_limits<double>::min())) {
    return FlowStatus::max_steps;
  }
  return std::nullopt;
}

// The t in [t0, t1] at which ‖u‖ = target, from the cubic Hermite interpolant of ‖u(t)‖
// through both ends with slopes d‖u‖/dt = L·N(u)/‖u‖ (4th-order accurate in the step).
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

// Appends a trajectory row for each member in `ids` (one batched evaluation of û).
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

// Where a blown-up member crossed max_norm: the reference direction. The last accepted
// step overshoots max_norm by a step-size dependent amount while û still turns (slowly),
// so the crossing point, not the step's end, makes the direction independent of the path
// of step sizes (and comparable with any other integrator to its tolerance).
struct Crossing {
  double time = 0;
  torch::Tensor u;  // [P]
};

// Fills the final fields of a member whose last trajectory row is its final state; a
// blown-up member reports N, the residual and T* at its max_norm crossing.
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
    out.blowup_time = time + std::pow(norm, 2 - total_degree) / ((total_degree - 2) * total_degree * out.ncf);
  }
}

}  // namespace

const char* flow_status_name(FlowStatus status) {
  switch (status) {
    case FlowStatus::blew_up:
      return "blew_up";
    case FlowStatus::collapsed:
      return "collapsed";
    case FlowStatus::max_time:
      return "max_time";
    case FlowStatus::max_steps:
      return "max_steps";
  }
  return "unknown";
}

std::function<void(const FlowProgress&)> flow_progress_printer(std::ostream& out,
                                                               double interval_seconds) {
  auto last = std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
  return [&out, interval_seconds, last](const FlowProgress& progress) {
    const auto now = std::chrono::steady_clock::now();
    if (std::chrono::duration<double>(now - *last).count() < interval_seconds) return;
    *last = now;
    out << fmt::format("flow: {:>8} steps  {} member(s) active  t = {:.6g}  max ||u|| = {:.3g}\n",
                       progress.accepted, progress.active, progress.time, progress.norm)
        << std::flush;
  };
}

FlowResult integrate_ncf_flow(const Ncf& ncf, const torch::Tensor& u0, const FlowOptions& options,
                              std::function<void(const FlowProgress&)> progress) {
  check_options(options);
  TORCH_CHECK(u0.dim() == 2 && u0.size(1) == ncf.parameters() && u0.size(0) >= 1,
              "integrate_ncf_flow – u0 must be [S, ", ncf.parameters(), "] with S >= 1 – got ",
              u0.sizes());
  TORCH_CHECK(u0.is_floating_point(), "integrate_ncf_flow – u0 must be floating point – got ",
              u0.scalar_type());
  const auto& sample_times = options.sample_times();
  TORCH_CHECK(sample_times.empty() || static_cast<int64_t>(sample_times.size()) == u0.size(0),
              "integrate_ncf_flow – sample_times needs one list per member (", u0.size(0),
              ") – got ", sample_times.size());
  for (const auto& times : sample_times) {
    for (size_t i = 0; i < times.size(); ++i) {
      TORCH_CHECK(times[i] >= 0 && (i == 0 || times[i] > times[i - 1]),
                  "integrate_ncf_flow – sample times must be >= 0 and increasing – got ", times[i],
                  " at position ", i);
    }
  }
  torch::NoGradGuard no_grad;
  const int64_t members = u0.size(0);
  const double total_degree = static_cast<double>(ncf.total_degree());
  // Own copy in the Ncf's dtype and device: rows are overwritten as members advance.
  auto u = u0.detach().to(ncf.inputs().options()).clone();
  const auto device = u.device();

  auto eval = ncf.evaluate(u);
  auto slope = eval.gradient;  // ∇N(u) at the current point (FSAL)
  std::vector<MemberState> states(static_cast<size_t>(members));
  {
    const auto stats = torch::stack({u.norm(2, -1), eval.value, slope.norm(2, -1)})
                           .to(torch::kCPU, torch::kFloat64);
    const auto at = stats.accessor<double, 2>();
    for (int64_t s = 0; s < members; ++s) {
      auto& m = states[s];
      m.norm = m.initial_norm = at[0][s];
      TORCH_CHECK(std::isfinite(m.norm) && m.norm > 0,
                  "integrate_ncf_flow – every row of u0 must be non-zero and finite – got ‖u0‖ = ",
                  m.norm, " in row ", s);
      m.value = at[1][s];
      m.speed = at[2][s];
      // h0 = 1e-3·‖u0‖/‖∇N(u0)‖; ∇N = 0 gives N = 0, which stalls at once below.
      m.step = m.speed > 0 ? kFirstStepFraction * m.norm / m.speed : 1.0;
    }
  }

  FlowResult result;
  result.total_degree = ncf.total_degree();
  result.members.resize(static_cast<size_t>(members));
  std::vector<int64_t> all(static_cast<size_t>(members));
  for (int64_t s = 0; s < members; ++s) all[s] = s;
  record(ncf, u, all, states, result);
  for (int64_t s = 0; s < members; ++s) {
    if (!sample_times.empty()) {
      const auto count = static_cast<int64_t>(sample_times[static_cast<size_t>(s)].size());
      result.members[static_cast<size_t>(s)].samples =
          torch::full({count, ncf.parameters()}, std::numeric_limits<double>::quiet_NaN(),
                      torch::kFloat64);
      // Times at or before 0 are u0 itself.
      auto& m = states[static_cast<size_t>(s)];
      for (const size_t end = samples_reached(m, options, static_cast<size_t>(s)); m.next_sample < end; ++m.next_sample) {
        result.members[static_cast<size_t>(s)].samples[static_cast<int64_t>(m.next_sample)].copy_(u[s]);
      }
    }
    if (const auto reason = stop_reason(states[s], options)) {
      states[s].active = false;
      finish(ncf, states[s], *reason, total_degree, std::nullopt, result.members[s]);
    }
  }

  for (int64_t iteration = 1;; ++iteration) {
    std::vector<int64_t> active;
    std::vector<double> steps;
    for (int64_t s = 0; s < members; ++s) {
      if (!states[s].active) continue;
      active.push_back(s);
      // Land exactly on max_time rather than overshoot it.
      steps.push_back(std::min(states[s].step, options.max_time() - states[s].time));
    }
    if (active.empty()) break;

    const auto index = index_tensor(active, device);
    const auto start = u.index_select(0, index);
    const auto h = torch::tensor(steps, torch::kFloat64).to(u.options()).unsqueeze(1);  // [A, 1]
    std::vector<torch::Tensor> stages{slope.index_select(0, index)};
    torch::Tensor next;
    torch::Tensor next_value;
    for (size_t i = 0; i < kStages.size(); ++i) {
      auto increment = kStages[i][0] * stages[0];
      for (size_t j = 1; j <= i; ++j) {
        if (kStages[i][j] != 0) increment = increment + kStages[i][j] * stages[j];
      }
      const auto point = start + h * increment;
      auto stage = ncf.evaluate(point);
      stages.push_back(stage.gradient);
      if (i + 1 == kStages.size()) {
        next = point;
        next_value = stage.value;
      }
    }
    auto error = kError[0] * stages[0];
    for (size_t j = 1; j < kError.size(); ++j) {
      if (kError[j] != 0) error = error + kError[j] * stages[j];
    }
    const auto stats = torch::stack({(h * error).norm(2, -1), next.norm(2, -1), next_value,
                                     stages.back().norm(2, -1)})
                           .to(torch::kCPU, torch::kFloat64);
    const auto at = stats.accessor<double, 2>();

    std::vector<int64_t> accepted_local;
    std::vector<int64_t> accepted_global;
    std::vector<int64_t> to_record;
    std::vector<std::pair<int64_t, FlowStatus>> finished;
    std::map<int64_t, Crossing> crossings;
    for (size_t a = 0; a < active.size(); ++a) {
      const int64_t i = static_cast<int64_t>(a);
      auto& m = states[active[a]];
      const double error_norm = at[0][i];
      const double norm = at[1][i];
      const double value = at[2][i];
      const double speed = at[3][i];
      // Local error per member, relative to the larger of ‖u‖ before and after the step.
      const double ratio = error_norm / (options.atol() + options.rtol() * std::max(m.norm, norm));
      const bool finite = std::isfinite(ratio) && std::isfinite(norm) && std::isfinite(value) &&
                          std::isfinite(speed);
      const double factor =
          !finite      ? kMinFactor
          : ratio == 0 ? kMaxFactor
                       : std::clamp(kSafety * std::pow(ratio, -0.2), kMinFactor, kMaxFactor);
      // Across a kink (p = 1) ∇N jumps and no step is small enough for the error test;
      // a step that moves u by at most min_relative_step·‖u‖ is taken anyway, so the flow
      // slides along kinks with an error of that order instead of stalling.
      const double floor_step = m.speed > 0 ? options.min_relative_step() * m.norm / m.speed : 0.0;
      const bool forced = finite && steps[a] <= floor_step;
      if (finite && (ratio <= 1 || forced)) {
        m.previous_time = m.time;
        m.previous_norm = m.norm;
        m.previous_value = m.value;
        const double target = options.max_time();
        const bool landed = steps[a] >= target - m.time;
        m.time = landed ? target : m.time + steps[a];
        m.norm = norm;
        m.value = value;
        m.speed = speed;
        // A step shortened to land on a time says nothing about the size the error allows:
        // keep the earlier proposal then.
        m.step = landed ? std::max(m.step, steps[a] * factor) : steps[a] * factor;
        if (options.min_relative_step() > 0 && speed > 0) {
          m.step = std::max(m.step, options.min_relative_step() * norm / speed);
        }
        ++m.accepted;
        accepted_local.push_back(i);
        accepted_global.push_back(active[a]);
        const auto member = static_cast<size_t>(active[a]);
        if (const size_t end = samples_reached(m, options, member); end > m.next_sample) {
          const auto& times = options.sample_times()[member];
          auto& samples = result.members[member].samples;
          for (; m.next_sample < end; ++m.next_sample) {
            const double fraction = (times[m.next_sample] - m.previous_time) / (m.time - m.previous_time);
            samples[static_cast<int64_t>(m.next_sample)].copy_(
                hermite(start[i], stages.front()[i], next[i], stages.back()[i], steps[a], fraction));
          }
        }
      } else {
        m.step = std::max(steps[a] * std::min(1.0, factor), floor_step);
        ++m.rejected;
      }
      if (const auto reason = stop_reason(m, options)) {
        m.active = false;
        finished.emplace_back(active[a], *reason);
        if (*reason == FlowStatus::blew_up && m.accepted > 0) {
          // This step crossed max_norm (an earlier one would have stopped the member).
          const double time = crossing_time(total_degree, m, options.max_norm());
          const double fraction = (time - m.previous_time) / (m.time - m.previous_time);
          crossings[active[a]] = {time, hermite(start[i], stages.front()[i], next[i], stages.back()[i],
                                                steps[a], fraction)};
        }
      }
      const bool due = m.accepted % options.record_every() == 0 || !m.active;
      if (due && m.last_recorded != m.accepted) to_record.push_back(active[a]);
    }
    if (!accepted_local.empty()) {
      const auto local = index_tensor(accepted_local, device);
      const auto global = index_tensor(accepted_global, device);
      u.index_copy_(0, global, next.index_select(0, local));
      slope.index_copy_(0, global, stages.back().index_select(0, local));
    }
    record(ncf, u, to_record, states, result);
    for (const auto& [s, reason] : finished) {
      const auto crossing = crossings.find(s);
      if (crossing != crossings.end()) u[s].copy_(crossing->second.u);
      finish(ncf, states[s], reason, total_degree,
             crossing == crossings.end() ? std::nullopt : std::optional<Crossing>(crossing->second),
             result.members[s]);
    }

    if (progress && iteration % kProgressEvery == 0) {
      FlowProgress report;
      for (const auto& m : states) {
        report.accepted = std::max(report.accepted, m.accepted);
        report.active += m.active ? 1 : 0;
        report.time = std::max(report.time, m.time);
        report.norm = std::max(report.norm, m.norm);
      }
      progress(report);
    }
  }
  result.direction = unit_rows(u);
  return result;
}

}  // namespace ncflab
