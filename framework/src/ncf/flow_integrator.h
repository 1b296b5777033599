// The NCF-flow integrator (internal): the state y = [v, ρ, τ] of every member, one batched
// Dormand–Prince step for the active members, and what each member reports. The stepping
// lives in flow_integrator.cpp, its landings on kinks (p = 1) in flow_landing.cpp, the
// samples, trajectory rows and final reports in flow_reports.cpp.
#pragma once

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "flow_kinks.h"
#include "flow_member.h"
#include "ncflab/core/dormand_prince.h"
#include "ncflab/core/work_team.h"
#include "ncflab/ncf/flow.h"

namespace ncflab::flow_detail {

// Retries to land on a kink before a step that leaves its mode is accepted as it is.
constexpr int64_t kMaxLandings = 20;

/// Row indices on `device`.
torch::Tensor index_tensor(const std::vector<int64_t>& ids, const torch::Device& device);

/// The rows of a tensor [A, W] (or one row [W]) as float64 on the host, copied only when they
/// are not already.
class HostRows {
 public:
  explicit HostRows(const torch::Tensor& rows)
      : rows_(rows.to(torch::kCPU, torch::kFloat64).contiguous()) {}
  const double* operator[](int64_t i) const {
    return rows_.data_ptr<double>() + i * rows_.size(-1);
  }

 private:
  torch::Tensor rows_;
};

// Columns of the integrated state y = [v, ρ, τ], [S, P + 2]: v ∥ û (its norm drifts by
// the local error and is never used: the right-hand side is scale-free in v), ρ = ln‖u‖
// and τ = t − t_step_start, reset to 0 after every accepted step (t itself is summed on
// the host, compensated).
struct Columns {
  int64_t parameters;
  int64_t log_norm() const { return parameters; }
  int64_t time() const { return parameters + 1; }
};

// One Dormand–Prince step tried for the active members: the stages, the 5th-order point
// and, on the host, what judging it needs (see HostRow).
struct TrialStep {
  std::vector<int64_t> active;     // members taking part
  std::vector<double> step_sizes;  // h (in s) per active member
  torch::Tensor start;             // y before, [A, P + 2]
  std::vector<torch::Tensor> stages;
  torch::Tensor next;  // y after, [A, P + 2]
  torch::Tensor host;  // [HostRow::count, A] float64 on CPU

  // y at fraction θ of active member a's step (cubic Hermite).
  torch::Tensor inside(size_t a, double theta) const {
    const auto i = static_cast<int64_t>(a);
    return dormand_prince::hermite(start[i], stages.front()[i], next[i], stages.back()[i],
                                   step_sizes[a], theta);
  }
  // The same into `out` (float64 on the host): loops for a trial on the host.
  void inside(size_t a, double theta, std::vector<double>& out) const;
};

// Rows of TrialStep::host.
enum HostRow : int64_t {
  direction_error,  // ‖h·e_v‖/‖v_next‖
  log_norm_error,   // |h·e_ρ|
  time_error,       // |h·e_τ|
  log_norm_start,
  log_norm_start_slope,
  log_norm_end,
  log_norm_end_slope,
  time_end,
  time_end_slope,  // judged only for finiteness: it is the next step's first stage
  value_end,       // N(û) at the new point
  gradient_end,    // ‖∇N(û)‖
  tangent_end,     // ‖∇N(û) − ⟨∇N(û), û⟩û‖
  count,
};

// The integration of every member's flow; one call of step() advances each active member
// by one accepted or rejected step.
class FlowIntegrator {
 public:
  FlowIntegrator(const Ncf& ncf, const torch::Tensor& u0, const FlowOptions& options)
      : ncf_(ncf),
        options_(options),
        total_degree_(static_cast<double>(ncf.total_degree())),
        max_time_(effective_max_time(options)),
        // Past the point where the step size is limited by stability rather than accuracy,
        // û jitters about its limit at about rtol: a test below that could never pass.
        direction_tol_(std::max(options.direction_tol(), 10 * options.rtol())),
        log_max_norm_(options.max_norm() > 0 ? std::log(options.max_norm())
                                             : std::numeric_limits<double>::infinity()),
        columns_{ncf.parameters()},
        host_net_(ncf),
        // A flow on the CPU in float64 runs its arithmetic in loops on the host (HostNet).
        on_host_(options.host_loops() && ncf.inputs().device().is_cpu() &&
                 ncf.inputs().scalar_type() == torch::kFloat64),
        team_(at::get_num_threads()),
        states_(static_cast<size_t>(u0.size(0))) {
    // Nets with kinks (p = 1, α ≠ 1): a point counts as at a kink within 100·rtol of it
    // (relative to the preactivation's scale); past that a crossing is located.
    if (has_kinks(ncf.options().activation())) {
      kinked_.emplace(ncf, host_net_, std::max(100 * options.rtol(), 1e-14));
    }
    result_.total_degree = ncf.total_degree();
    result_.members.resize(states_.size());
    start(u0.detach().to(ncf.inputs().options()));
  }

  /// Tries one step for every active member; false when none is left.
  bool step() {
    std::vector<int64_t> active;
    std::vector<double> step_sizes;
    for (size_t s = 0; s < states_.size(); ++s) {
      if (!states_[s].active) continue;
      active.push_back(static_cast<int64_t>(s));
      step_sizes.push_back(states_[s].h);
    }
    if (active.empty()) return false;
    judge(trial(std::move(active), std::move(step_sizes)));
    return true;
  }

  /// The furthest member's progress, for the caller's progress line.
  FlowProgress progress() const {
    FlowProgress report;
    double log_norm = -std::numeric_limits<double>::infinity();
    for (const auto& m : states_) {
      report.accepted = std::max(report.accepted, m.accepted);
      report.active += m.active ? 1 : 0;
      report.time = std::max(report.time, m.time.value());
      log_norm = std::max(log_norm, m.log_norm);
    }
    report.norm = std::exp(log_norm);
    return report;
  }

  FlowResult result() && {
    result_.direction = unit_rows(y_.narrow(1, 0, columns_.parameters));
    return std::move(result_);
  }

 private:
  torch::Tensor derivative(const torch::Tensor& y, const std::vector<int64_t>& members,
                           torch::Tensor* statistics);
  // The same for one member's row y [P + 2] on the host: dy/ds into `slope` [P + 2] and,
  // unless null, N(û), ‖∇N(û)‖ and the tangent part's norm into statistics[0, 1, 2]. Touches
  // nothing of other members: members may run on several threads at once.
  void host_derivative(const double* y, int64_t member, double* slope, double* statistics);
  // trial() in loops on the host.
  void host_trial(TrialStep& trial, const torch::Tensor& index);
  void start(const torch::Tensor& u0);
  TrialStep trial(std::vector<int64_t> active, std::vector<double> step_sizes);
  void judge(const TrialStep& trial);
  double error_ratio(const MemberState& m, const TrialStep& trial, size_t a, bool* finite) const;
  bool accept(MemberState& m, const TrialStep& trial, size_t a);
  // Nets with kinks (flow_landing.cpp): the steps that left their mode by more than the
  // tolerance, retried up to where they leave it; the new modes at the accepted points.
  std::vector<bool> locate_departures(
      const TrialStep& trial, const std::vector<size_t>& passed,
      std::vector<std::optional<std::vector<Departure>>>& departures);
  double departure_fraction(const TrialStep& trial, size_t a, const std::vector<Kink>& kinks,
                            const std::vector<double>& start_margins,
                            std::vector<double> end_margins);
  void settle_modes(const std::vector<int64_t>& members,
                    const std::vector<std::optional<std::vector<Departure>>>& known);
  void land_on_max_time(const std::vector<std::pair<int64_t, torch::Tensor>>& landings);
  bool direction_converged(const MemberState& m) const;
  void close_along_ray(MemberState& m, int64_t member);
  void keep_samples(MemberState& m, const TrialStep& trial, size_t a);
  torch::Tensor weights_at(const torch::Tensor& y_row) const;
  void record(int64_t member);
  void conclude(int64_t member);

  const Ncf& ncf_;
  const FlowOptions& options_;
  double total_degree_;
  double max_time_;
  double direction_tol_;
  double log_max_norm_;
  Columns columns_;
  HostNet host_net_;
  bool on_host_;
  WorkTeam team_;        // host loops: members on as many threads as LibTorch's intra-op threads
  torch::Tensor y_;      // [S, P + 2]
  torch::Tensor slope_;  // dy/ds at y (FSAL)
  std::vector<MemberState> states_;
  std::optional<KinkedField> kinked_;  // nets with kinks only
  std::vector<KinkMode> modes_;        // per member, with kinked_
  FlowResult result_;
};

}  // namespace ncflab::flow_detail
