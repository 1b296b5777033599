// Dormand–Prince 5(4) integration of the NCF gradient flow, batched over an ensemble with
// one step size per member, and the blow-up bookkeeping of SPEC §1 (T*, escape, collapse).
#include "ncflab/ncf/flow.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <ostream>

#include "flow_member.h"
#include "ncflab/core/dormand_prince.h"

namespace ncflab {
namespace {

using namespace flow_detail;
using namespace dormand_prince;

constexpr int64_t kProgressEvery = 20;  // callers throttle by time (flow_progress_printer)

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
  TORCH_CHECK(options.kink_step() >= 0 && options.kink_step() < 1,
              "integrate_ncf_flow – kink_step must be in [0, 1) – got ", options.kink_step());
  TORCH_CHECK(options.record_every() >= 1, "integrate_ncf_flow – record_every must be >= 1 – got ",
              options.record_every());
}

void check_inputs(const Ncf& ncf, const torch::Tensor& u0, const FlowOptions& options) {
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
}

// One Dormand–Prince step tried for the active members: the stages, the 5th-order point
// and, on the host, the error norm, ‖u‖, N(u) and ‖∇N(u)‖ at that point per member.
struct TrialStep {
  std::vector<int64_t> active;     // members taking part
  std::vector<double> step_sizes;  // h per active member
  torch::Tensor start;             // u before, [A, P]
  std::vector<torch::Tensor> stages;
  torch::Tensor next;  // u after, [A, P]
  torch::Tensor host;  // [4, A]: ‖h·error‖, ‖next‖, N(next), ‖∇N(next)‖

  // u at fraction s of active member a's step (cubic Hermite).
  torch::Tensor inside(size_t a, double s) const {
    const auto i = static_cast<int64_t>(a);
    return hermite(start[i], stages.front()[i], next[i], stages.back()[i], step_sizes[a], s);
  }
};

// The integration of every member's flow; one call of step() advances each active member
// by one accepted or rejected step.
class FlowIntegrator {
 public:
  FlowIntegrator(const Ncf& ncf, const torch::Tensor& u0, const FlowOptions& options)
      : ncf_(ncf),
        options_(options),
        // The kink floor is for nets with kinks (p = 1) only; smooth nets keep full error control.
        kink_step_(ncf.options().activation().p() == 1 ? options.kink_step() : 0.0),
        total_degree_(static_cast<double>(ncf.total_degree())),
        // Own copy in the Ncf's dtype and device: rows are overwritten as members advance.
        u_(u0.detach().to(ncf.inputs().options()).clone()),
        states_(static_cast<size_t>(u0.size(0))) {
    result_.total_degree = ncf.total_degree();
    result_.members.resize(states_.size());
    start();
  }

  /// Tries one step for every active member; false when none is left.
  bool step() {
    std::vector<int64_t> active;
    std::vector<double> step_sizes;
    for (size_t s = 0; s < states_.size(); ++s) {
      if (!states_[s].active) continue;
      active.push_back(static_cast<int64_t>(s));
      // Land exactly on max_time rather than overshoot it.
      step_sizes.push_back(std::min(states_[s].h, options_.max_time() - states_[s].time));
    }
    if (active.empty()) return false;
    judge(trial(std::move(active), std::move(step_sizes)));
    return true;
  }

  /// The furthest member's progress, for the caller's progress line.
  FlowProgress progress() const {
    FlowProgress report;
    for (const auto& m : states_) {
      report.accepted = std::max(report.accepted, m.accepted);
      report.active += m.active ? 1 : 0;
      report.time = std::max(report.time, m.time);
      report.norm = std::max(report.norm, m.norm);
    }
    return report;
  }

  FlowResult result() && {
    result_.direction = unit_rows(u_);
    return std::move(result_);
  }

 private:
  void start();
  TrialStep trial(std::vector<int64_t> active, std::vector<double> step_sizes) const;
  void judge(const TrialStep& trial);
  bool accept(MemberState& m, const TrialStep& trial, size_t a);
  void keep_samples(MemberState& m, const TrialStep& trial, size_t a);

  const Ncf& ncf_;
  const FlowOptions& options_;
  double kink_step_;
  double total_degree_;
  torch::Tensor u_;
  torch::Tensor slope_;  // ∇N(u) at the current point (FSAL)
  std::vector<MemberState> states_;
  FlowResult result_;
};

// u0's norms, N and ∇N; the first step sizes, trajectory rows and samples at t = 0;
// members that stop at once (e.g. ∇N(u0) = 0).
void FlowIntegrator::start() {
  const int64_t members = u_.size(0);
  auto eval = ncf_.evaluate(u_);
  slope_ = eval.gradient;
  const auto stats = torch::stack({u_.norm(2, -1), eval.value, slope_.norm(2, -1)})
                         .to(torch::kCPU, torch::kFloat64);
  const auto at = stats.accessor<double, 2>();
  for (int64_t s = 0; s < members; ++s) {
    auto& m = states_[s];
    m.norm = m.initial_norm = at[0][s];
    TORCH_CHECK(std::isfinite(m.norm) && m.norm > 0,
                "integrate_ncf_flow – every row of u0 must be non-zero and finite – got ‖u0‖ = ",
                m.norm, " in row ", s);
    m.value = at[1][s];
    m.speed = at[2][s];
    // h0 = 1e-3·‖u0‖/‖∇N(u0)‖; ∇N = 0 gives N = 0, which stalls at once below.
    m.h = m.speed > 0 ? kFirstStepFraction * m.norm / m.speed : 1.0;
  }
  std::vector<int64_t> all(static_cast<size_t>(members));
  for (int64_t s = 0; s < members; ++s) all[s] = s;
  record(ncf_, u_, all, states_, result_);
  const auto& sample_times = options_.sample_times();
  for (int64_t s = 0; s < members; ++s) {
    auto& m = states_[static_cast<size_t>(s)];
    if (!sample_times.empty()) {
      const auto count = static_cast<int64_t>(sample_times[static_cast<size_t>(s)].size());
      auto& samples = result_.members[static_cast<size_t>(s)].samples;
      samples = torch::full({count, ncf_.parameters()}, std::numeric_limits<double>::quiet_NaN(),
                            torch::kFloat64);
      // Times at or before 0 are u0 itself.
      for (const size_t end = samples_reached(m, options_, static_cast<size_t>(s));
           m.next_sample < end; ++m.next_sample) {
        samples[static_cast<int64_t>(m.next_sample)].copy_(u_[s]);
      }
    }
    if (const auto reason = stop_reason(m, options_)) {
      m.active = false;
      finish(ncf_, m, *reason, total_degree_, std::nullopt, result_.members[s]);
    }
  }
}

TrialStep FlowIntegrator::trial(std::vector<int64_t> active, std::vector<double> step_sizes) const {
  TrialStep trial;
  const auto index = index_tensor(active, u_.device());
  trial.active = std::move(active);
  trial.step_sizes = std::move(step_sizes);
  trial.start = u_.index_select(0, index);
  const auto h =
      torch::tensor(trial.step_sizes, torch::kFloat64).to(u_.options()).unsqueeze(1);  // [A, 1]
  trial.stages = {slope_.index_select(0, index)};
  torch::Tensor next_value;
  for (size_t i = 0; i < kStages.size(); ++i) {
    const auto point = stage_point(trial.start, h, trial.stages, i);
    auto stage = ncf_.evaluate(point);
    trial.stages.push_back(stage.gradient);
    if (i + 1 == kStages.size()) {
      trial.next = point;
      next_value = stage.value;
    }
  }
  const auto error = error_slope(trial.stages);
  trial.host = torch::stack({(h * error).norm(2, -1), trial.next.norm(2, -1), next_value,
                             trial.stages.back().norm(2, -1)})
                   .to(torch::kCPU, torch::kFloat64);
  return trial;
}

// Accepts or rejects each member's step, proposes its next step size, and finishes the
// members that stop; then copies the accepted points into u.
void FlowIntegrator::judge(const TrialStep& trial) {
  std::vector<int64_t> accepted_local;
  std::vector<int64_t> accepted_global;
  std::vector<int64_t> to_record;
  std::vector<std::pair<int64_t, FlowStatus>> finished;
  std::map<int64_t, Crossing> crossings;
  for (size_t a = 0; a < trial.active.size(); ++a) {
    const int64_t member = trial.active[a];
    auto& m = states_[member];
    if (accept(m, trial, a)) {
      accepted_local.push_back(static_cast<int64_t>(a));
      accepted_global.push_back(member);
    }
    if (const auto reason = stop_reason(m, options_)) {
      m.active = false;
      finished.emplace_back(member, *reason);
      if (*reason == FlowStatus::blew_up && m.accepted > 0) {
        // This step crossed max_norm (an earlier one would have stopped the member).
        const double time = crossing_time(total_degree_, m, options_.max_norm());
        const double fraction = (time - m.previous_time) / (m.time - m.previous_time);
        crossings[member] = {time, trial.inside(a, fraction)};
      }
    }
    const bool due = m.accepted % options_.record_every() == 0 || !m.active;
    if (due && m.last_recorded != m.accepted) to_record.push_back(member);
  }
  if (!accepted_local.empty()) {
    const auto local = index_tensor(accepted_local, u_.device());
    const auto global = index_tensor(accepted_global, u_.device());
    u_.index_copy_(0, global, trial.next.index_select(0, local));
    slope_.index_copy_(0, global, trial.stages.back().index_select(0, local));
  }
  record(ncf_, u_, to_record, states_, result_);
  for (const auto& [s, reason] : finished) {
    const auto crossing = crossings.find(s);
    if (crossing != crossings.end()) u_[s].copy_(crossing->second.u);
    finish(ncf_, states_[s], reason, total_degree_,
           crossing == crossings.end() ? std::nullopt : std::optional<Crossing>(crossing->second),
           result_.members[s]);
  }
}

// The step-size controller for active member a: true when its step is accepted (m then
// holds the new point's scalars).
bool FlowIntegrator::accept(MemberState& m, const TrialStep& trial, size_t a) {
  const auto at = trial.host.accessor<double, 2>();
  const auto i = static_cast<int64_t>(a);
  const double error_norm = at[0][i];
  const double norm = at[1][i];
  const double value = at[2][i];
  const double speed = at[3][i];
  const double step_size = trial.step_sizes[a];
  // Local error per member, relative to the larger of ‖u‖ before and after the step.
  const double ratio = error_norm / (options_.atol() + options_.rtol() * std::max(m.norm, norm));
  const bool finite =
      std::isfinite(ratio) && std::isfinite(norm) && std::isfinite(value) && std::isfinite(speed);
  const double factor = step_size_factor(ratio, finite);
  // Across a kink (p = 1) ∇N jumps and no step is small enough for the error test;
  // a step that moves u by at most kink_step·‖u‖ is taken anyway, so the flow
  // slides along kinks with an error of that order instead of stalling.
  const double floor_step = m.speed > 0 ? kink_step_ * m.norm / m.speed : 0.0;
  const bool forced = finite && step_size <= floor_step;
  if (!(finite && (ratio <= 1 || forced))) {
    m.h = std::max(step_size * std::min(1.0, factor), floor_step);
    ++m.rejected;
    return false;
  }
  m.previous_time = m.time;
  m.previous_norm = m.norm;
  m.previous_value = m.value;
  const double target = options_.max_time();
  const bool landed = step_size >= target - m.time;
  m.time = landed ? target : m.time + step_size;
  m.norm = norm;
  m.value = value;
  m.speed = speed;
  // A step shortened to land on a time says nothing about the size the error allows:
  // keep the earlier proposal then.
  m.h = landed ? std::max(m.h, step_size * factor) : step_size * factor;
  if (kink_step_ > 0 && speed > 0) m.h = std::max(m.h, kink_step_ * norm / speed);
  ++m.accepted;
  keep_samples(m, trial, a);
  return true;
}

// The sample times this accepted step passed, by interpolation inside it.
void FlowIntegrator::keep_samples(MemberState& m, const TrialStep& trial, size_t a) {
  const auto member = static_cast<size_t>(trial.active[a]);
  const size_t end = samples_reached(m, options_, member);
  if (end <= m.next_sample) return;
  const auto& times = options_.sample_times()[member];
  auto& samples = result_.members[member].samples;
  for (; m.next_sample < end; ++m.next_sample) {
    const double fraction = (times[m.next_sample] - m.previous_time) / (m.time - m.previous_time);
    samples[static_cast<int64_t>(m.next_sample)].copy_(trial.inside(a, fraction));
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
  auto last =
      std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
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
  check_inputs(ncf, u0, options);
  torch::NoGradGuard no_grad;
  FlowIntegrator integrator(ncf, u0, options);
  for (int64_t iteration = 1; integrator.step(); ++iteration) {
    if (progress && iteration % kProgressEvery == 0) progress(integrator.progress());
  }
  return std::move(integrator).result();
}

}  // namespace ncflab
