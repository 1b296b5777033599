// Stepping the NCF flow in the blow-up-free variables (û, ln‖u‖, t) of SPEC §1: the
// right-hand side, the start, one batched Dormand–Prince trial for the active members and
// the per-member step-size controller (flow_integrator.h).
#include "flow_integrator.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "ncflab/core/dormand_prince.h"

namespace ncflab::flow_detail {

using namespace dormand_prince;

torch::Tensor index_tensor(const std::vector<int64_t>& ids, const torch::Device& device) {
  return torch::tensor(ids, torch::kLong).to(device);
}

// dy/ds at y [A, P + 2] (SPEC §1): dv/ds = (∇N(v) − ⟨∇N(v), v⟩v/‖v‖²)/‖v‖^(L−2), the
// spherical gradient ascent of N scaled so that it is homogeneous of degree 1 in v, whose
// norm then drifts only by the local error and changes nothing; dρ/ds = L·N(û);
// dτ/ds = e^(−(L−2)ρ) = ‖u‖^(2−L). With `statistics`, also N(û), ‖∇N(û)‖ and the tangent
// part's norm [3, A]. On nets with kinks, ∇N is that of each member's mode (flow_kinks.h).
torch::Tensor FlowIntegrator::derivative(const torch::Tensor& y,
                                         const std::vector<int64_t>& members,
                                         torch::Tensor* statistics) {
  if (on_host_) {
    const auto rows = y.contiguous();
    auto slopes = torch::empty_like(rows);
    auto host_statistics = torch::empty({3, rows.size(0)}, rows.options());
    team_.run(static_cast<int64_t>(members.size()), [&](int64_t i, int) {
      std::vector<double> at(3);
      host_derivative(rows[i].data_ptr<double>(), members[static_cast<size_t>(i)],
                      slopes[i].data_ptr<double>(), at.data());
      for (int64_t k = 0; k < 3; ++k) {
        host_statistics.data_ptr<double>()[k * rows.size(0) + i] = at[static_cast<size_t>(k)];
      }
    });
    if (statistics) *statistics = host_statistics;
    return slopes;
  }
  const double degree = total_degree_;
  const auto v = y.narrow(1, 0, columns_.parameters);
  NcfEvaluation eval;
  if (kinked_) {
    std::vector<KinkMode*> modes;
    for (const int64_t member : members) modes.push_back(&modes_[static_cast<size_t>(member)]);
    eval = kinked_->evaluate(v, modes);
  } else {
    eval = ncf_.evaluate(v);
  }
  const auto norm = v.norm(2, -1);                          // [A]
  const auto radial = degree * eval.value / norm.square();  // ⟨∇N(v), v⟩/‖v‖² by Euler
  const auto tangent = eval.gradient - radial.unsqueeze(1) * v;
  const auto unit_value = eval.value / norm.pow(degree);
  const auto dv = tangent * norm.pow(2 - degree).unsqueeze(1);
  const auto dtime = torch::exp(-(degree - 2) * y.select(1, columns_.log_norm()));
  if (statistics) {
    const auto unit_scale = norm.pow(1 - degree);  // ∇N(û) = ∇N(v)/‖v‖^(L−1)
    *statistics = torch::stack(
        {unit_value, eval.gradient.norm(2, -1) * unit_scale, tangent.norm(2, -1) * unit_scale});
  }
  return torch::cat({dv, (degree * unit_value).unsqueeze(1), dtime.unsqueeze(1)}, 1);
}

// derivative() for one row on the host, in the same arithmetic.
void FlowIntegrator::host_derivative(const double* y, int64_t member, double* slope,
                                     double* statistics) {
  const double degree = total_degree_;
  const int64_t size = columns_.parameters;
  std::vector<double> gradients(static_cast<size_t>(size));
  double* gradient = gradients.data();
  double value = 0;
  if (kinked_) {
    value = kinked_->evaluate(y, modes_[static_cast<size_t>(member)], gradient);
  } else {
    HostPass pass;
    host_net_.forward(y, nullptr, pass);
    value = host_net_.value(pass);
    host_net_.gradient(y, pass, host_net_.derivatives(pass), gradient);
  }
  const double norm = std::sqrt(dot(y, y, size));
  const double radial = degree * value / (norm * norm);  // ⟨∇N(v), v⟩/‖v‖² by Euler
  const double unit_value = value / std::pow(norm, degree);
  const double speed = std::pow(norm, 2 - degree);
  double gradient_squared = 0;
  double tangent_squared = 0;
  for (int64_t i = 0; i < size; ++i) {
    const double tangent = gradient[i] - radial * y[i];
    slope[i] = tangent * speed;
    gradient_squared += gradient[i] * gradient[i];
    tangent_squared += tangent * tangent;
  }
  slope[columns_.log_norm()] = degree * unit_value;
  slope[columns_.time()] = std::exp(-(degree - 2) * y[columns_.log_norm()]);
  if (statistics) {
    const double unit_scale = std::pow(norm, 1 - degree);  // ∇N(û) = ∇N(v)/‖v‖^(L−1)
    statistics[0] = unit_value;
    statistics[1] = std::sqrt(gradient_squared) * unit_scale;
    statistics[2] = std::sqrt(tangent_squared) * unit_scale;
  }
}

void TrialStep::inside(size_t a, double theta, std::vector<double>& out) const {
  const auto i = static_cast<int64_t>(a);
  if (!start.device().is_cpu() || start.scalar_type() != torch::kFloat64) {
    const HostRows row(inside(a, theta));
    out.assign(row[0], row[0] + start.size(1));
    return;
  }
  const double* y0 = start[i].data_ptr<double>();
  const double* k0 = stages.front()[i].data_ptr<double>();
  const double* y1 = next[i].data_ptr<double>();
  const double* k1 = stages.back()[i].data_ptr<double>();
  const double h = step_sizes[a];
  const double s = theta;
  const double c = 1 - s;
  out.resize(static_cast<size_t>(start.size(1)));
  for (size_t j = 0; j < out.size(); ++j) {
    out[j] = (1 + 2 * s) * c * c * y0[j] + s * c * c * h * k0[j] + s * s * (3 - 2 * s) * y1[j] -
             s * s * c * h * k1[j];
  }
}

// u0's direction and norm, the first step sizes, trajectory rows and samples at t = 0;
// members that stop at once (a KKT ray needs no steps to say where it goes, only t does).
void FlowIntegrator::start(const torch::Tensor& u0) {
  const int64_t members = u0.size(0);
  const auto norms = u0.norm(2, -1);
  const auto host_norms = norms.to(torch::kCPU, torch::kFloat64);
  for (int64_t s = 0; s < members; ++s) {
    const double norm = host_norms[s].item<double>();
    TORCH_CHECK(std::isfinite(norm) && norm > 0,
                "integrate_ncf_flow – every row of u0 must be non-zero and finite – got ‖u0‖ = ",
                norm, " in row ", s);
  }
  y_ = torch::cat(
      {u0 / norms.unsqueeze(1), norms.log().unsqueeze(1), torch::zeros({members, 1}, u0.options())},
      1);
  std::vector<int64_t> all(static_cast<size_t>(members));
  for (int64_t s = 0; s < members; ++s) all[static_cast<size_t>(s)] = s;
  if (kinked_) {
    const HostRows rows(y_);
    for (int64_t s = 0; s < members; ++s) modes_.push_back(kinked_->initial_mode(rows[s]));
  }
  torch::Tensor statistics;
  slope_ = derivative(y_, all, &statistics);
  const auto at_host = statistics.to(torch::kCPU, torch::kFloat64);
  const auto at = at_host.accessor<double, 2>();
  for (int64_t s = 0; s < members; ++s) {
    auto& m = states_[static_cast<size_t>(s)];
    m.log_norm = std::log(host_norms[s].item<double>());
    m.value = at[0][s];
    m.largest_gradient = m.gradient = at[1][s];
    m.tangent = at[2][s];
    // The first step moves û (or ρ) by about 1e-3: |dρ/ds| = L·|N(û)| ≤ L·‖∇N(û)‖.
    m.h = m.gradient > 0 ? kFirstStepFraction / (total_degree_ * m.gradient) : 1.0;
    if (m.log_norm >= log_max_norm_) m.escape_time = 0;
    if (!options_.sample_times().empty()) {
      const auto& times = options_.sample_times()[static_cast<size_t>(s)];
      auto& samples = result_.members[static_cast<size_t>(s)].samples;
      samples = torch::full({static_cast<int64_t>(times.size()), columns_.parameters},
                            std::numeric_limits<double>::quiet_NaN(), torch::kFloat64);
      // Times at or before 0 are u0 itself.
      for (; m.next_sample < times.size() && times[m.next_sample] <= 0; ++m.next_sample) {
        samples[static_cast<int64_t>(m.next_sample)].copy_(u0[s]);
      }
    }
    m.converged = direction_converged(m);
    record(s);
    conclude(s);
  }
}

TrialStep FlowIntegrator::trial(std::vector<int64_t> active, std::vector<double> step_sizes) {
  TrialStep trial;
  const auto index = index_tensor(active, y_.device());
  trial.active = std::move(active);
  trial.step_sizes = std::move(step_sizes);
  trial.start = y_.index_select(0, index);
  if (on_host_) {
    host_trial(trial, index);
    return trial;
  }
  const auto h =
      torch::tensor(trial.step_sizes, torch::kFloat64).to(y_.options()).unsqueeze(1);  // [A, 1]
  trial.stages = {slope_.index_select(0, index)};
  torch::Tensor statistics;
  for (size_t i = 0; i < kStages.size(); ++i) {
    const auto point = stage_point(trial.start, h, trial.stages, i);
    const bool last = i + 1 == kStages.size();
    trial.stages.push_back(derivative(point, trial.active, last ? &statistics : nullptr));
    if (last) trial.next = point;
  }
  const auto error = h * error_slope(trial.stages);
  const auto& c = columns_;
  const auto column = [](const torch::Tensor& t, int64_t j) { return t.select(1, j); };
  const auto& first = trial.stages.front();
  const auto& end = trial.stages.back();
  trial.host = torch::stack({error.narrow(1, 0, c.parameters).norm(2, -1) /
                                 trial.next.narrow(1, 0, c.parameters).norm(2, -1),
                             column(error, c.log_norm()).abs(), column(error, c.time()).abs(),
                             column(trial.start, c.log_norm()), column(first, c.log_norm()),
                             column(trial.next, c.log_norm()), column(end, c.log_norm()),
                             column(trial.next, c.time()), column(end, c.time()), statistics[0],
                             statistics[1], statistics[2]})
                   .to(torch::kCPU, torch::kFloat64);
  return trial;
}

// The stages, the new point and the host rows of trial(), member by member in loops.
void FlowIntegrator::host_trial(TrialStep& trial, const torch::Tensor& index) {
  const auto members = static_cast<int64_t>(trial.active.size());
  const int64_t width = trial.start.size(1);
  trial.stages = {slope_.index_select(0, index)};
  for (size_t i = 0; i < kStages.size(); ++i)
    trial.stages.push_back(torch::empty_like(trial.start));
  trial.next = torch::empty_like(trial.start);
  trial.host = torch::empty({HostRow::count, members}, trial.start.options());
  double* host = trial.host.data_ptr<double>();
  const auto& c = columns_;
  team_.run(members, [&](int64_t a, int) {
    std::vector<double*> slopes(trial.stages.size());
    std::vector<double> increment(static_cast<size_t>(width));
    std::vector<double> point(static_cast<size_t>(width));
    std::vector<double> statistics(3);
    const double h = trial.step_sizes[static_cast<size_t>(a)];
    const double* start = trial.start.data_ptr<double>() + a * width;
    for (size_t j = 0; j < trial.stages.size(); ++j) {
      slopes[j] = trial.stages[j].data_ptr<double>() + a * width;
    }
    double* next = trial.next.data_ptr<double>() + a * width;
    // stage_point and error_slope (dormand_prince.h), term by term in the same order.
    for (size_t i = 0; i < kStages.size(); ++i) {
      const bool last = i + 1 == kStages.size();
      double* out = last ? next : point.data();
      for (int64_t k = 0; k < width; ++k) {
        double sum = kStages[i][0] * slopes[0][k];
        for (size_t j = 1; j <= i; ++j) {
          if (kStages[i][j] != 0) sum = sum + kStages[i][j] * slopes[j][k];
        }
        out[k] = start[k] + h * sum;
      }
      host_derivative(out, trial.active[static_cast<size_t>(a)], slopes[i + 1],
                      last ? statistics.data() : nullptr);
    }
    for (int64_t k = 0; k < width; ++k) {
      double sum = kError[0] * slopes[0][k];
      for (size_t j = 1; j < kError.size(); ++j) {
        if (kError[j] != 0) sum = sum + kError[j] * slopes[j][k];
      }
      increment[static_cast<size_t>(k)] = h * sum;
    }
    double error_squared = 0;
    double next_squared = 0;
    for (int64_t k = 0; k < c.parameters; ++k) {
      error_squared += increment[static_cast<size_t>(k)] * increment[static_cast<size_t>(k)];
      next_squared += next[k] * next[k];
    }
    const double* first = slopes.front();
    const double* end = slopes.back();
    const auto set = [&](HostRow row, double value) { host[row * members + a] = value; };
    set(direction_error, std::sqrt(error_squared) / std::sqrt(next_squared));
    set(log_norm_error, std::abs(increment[static_cast<size_t>(c.log_norm())]));
    set(time_error, std::abs(increment[static_cast<size_t>(c.time())]));
    set(log_norm_start, start[c.log_norm()]);
    set(log_norm_start_slope, first[c.log_norm()]);
    set(log_norm_end, next[c.log_norm()]);
    set(log_norm_end_slope, end[c.log_norm()]);
    set(time_end, next[c.time()]);
    set(time_end_slope, end[c.time()]);
    set(value_end, statistics[0]);
    set(gradient_end, statistics[1]);
    set(tangent_end, statistics[2]);
  });
}

// Accepts or rejects each member's step and proposes its next step size; copies the
// accepted points into y, lands members that passed max_time on it, and stops the members
// that are done. On nets with kinks a step that passes the error test but leaves its mode
// beyond the tolerance is retried up to where it leaves it.
void FlowIntegrator::judge(const TrialStep& trial) {
  std::vector<size_t> passed;
  for (size_t a = 0; a < trial.active.size(); ++a) {
    bool finite = false;
    const double ratio =
        error_ratio(states_[static_cast<size_t>(trial.active[a])], trial, a, &finite);
    if (finite && ratio <= 1) passed.push_back(a);
  }
  // Per active member: retried to land on a kink, and where its new point left its mode.
  std::vector<bool> retried(trial.active.size(), false);
  std::vector<std::optional<std::vector<Departure>>> departures(trial.active.size());
  if (kinked_ && !passed.empty()) retried = locate_departures(trial, passed, departures);
  std::vector<int64_t> accepted_local;
  std::vector<int64_t> accepted_global;
  std::vector<std::pair<int64_t, torch::Tensor>> landings;
  for (size_t a = 0; a < trial.active.size(); ++a) {
    const int64_t member = trial.active[a];
    auto& m = states_[static_cast<size_t>(member)];
    if (retried[a] || !accept(m, trial, a)) continue;
    accepted_local.push_back(static_cast<int64_t>(a));
    accepted_global.push_back(member);
    if (m.time.value() >= max_time_) {
      // Back to the point of the step where t = max_time exactly.
      const double theta = fraction_at_time(m, total_degree_, max_time_ - m.step_start_time);
      landings.emplace_back(member, trial.inside(a, theta));
      departures[a].reset();
    }
  }
  if (!accepted_local.empty()) {
    const auto local = index_tensor(accepted_local, y_.device());
    const auto global = index_tensor(accepted_global, y_.device());
    y_.index_copy_(0, global, trial.next.index_select(0, local));
    slope_.index_copy_(0, global, trial.stages.back().index_select(0, local));
    y_.select(1, columns_.time()).index_fill_(0, global, 0.0);
  }
  land_on_max_time(landings);
  if (kinked_ && !accepted_global.empty()) {
    std::vector<std::optional<std::vector<Departure>>> known;
    for (const int64_t a : accepted_local) known.push_back(departures[static_cast<size_t>(a)]);
    settle_modes(accepted_global, known);
  }
  for (const int64_t member : accepted_global) {
    auto& m = states_[static_cast<size_t>(member)];
    m.converged = direction_converged(m);
    if (m.accepted % options_.record_every() == 0) record(member);
  }
  for (const int64_t member : trial.active) conclude(member);
}

// The step's largest local error over its tolerance (û against its unit norm, ρ absolutely:
// a relative error of ‖u‖, τ against t); `finite` whether everything judged is finite.
double FlowIntegrator::error_ratio(const MemberState& m, const TrialStep& trial, size_t a,
                                   bool* finite) const {
  const auto at = trial.host.accessor<double, 2>();
  const auto i = static_cast<int64_t>(a);
  const double rtol = options_.rtol();
  const double ratio = std::max({at[direction_error][i] / rtol, at[log_norm_error][i] / rtol,
                                 at[time_error][i] / (rtol * (m.time.value() + at[time_end][i]))});
  *finite = std::isfinite(ratio);
  for (int64_t row = 0; row < HostRow::count; ++row) *finite = *finite && std::isfinite(at[row][i]);
  return ratio;
}

// The step-size controller for active member a: true when its step is accepted (m then
// holds the new point's scalars).
bool FlowIntegrator::accept(MemberState& m, const TrialStep& trial, size_t a) {
  const auto at = trial.host.accessor<double, 2>();
  const auto i = static_cast<int64_t>(a);
  const double step_size = trial.step_sizes[a];
  const double start_time = m.time.value();
  bool finite = false;
  const double ratio = error_ratio(m, trial, a, &finite);
  const double factor = step_size_factor(ratio, finite);
  if (!(finite && ratio <= 1)) {
    m.h = step_size * std::min(1.0, factor);
    ++m.rejected;
    return false;
  }
  // A step retried too often to land on a kink was taken as it is (locate_departures).
  if (m.landings > kMaxLandings) ++m.kinks.unlocated;
  m.step = step_size;
  m.step_start_time = start_time;
  m.log_norm_step = {at[log_norm_start][i], at[log_norm_start_slope][i], at[log_norm_end][i],
                     at[log_norm_end_slope][i]};
  m.step_time = at[time_end][i];
  m.time.add(at[time_end][i]);
  m.log_norm = at[log_norm_end][i];
  m.value = at[value_end][i];
  m.gradient = at[gradient_end][i];
  m.tangent = at[tangent_end][i];
  m.largest_gradient = std::max(m.largest_gradient, m.gradient);
  m.h = step_size * factor;
  // After landing on a kink, resume with the step size that passed the error test before.
  if (m.landings > 0) m.h = std::max(m.h, m.resume_step);
  m.landings = 0;
  ++m.accepted;
  if (std::isnan(m.escape_time) && m.log_norm >= log_max_norm_) {
    const double theta = m.log_norm_step.fraction_reaching(step_size, log_max_norm_);
    m.escape_time = start_time + time_in_step(m, total_degree_, theta);
  }
  keep_samples(m, trial, a);
  return true;
}

// Members whose last step passed max_time continue from the point of it at max_time, with
// their scalars evaluated there.
void FlowIntegrator::land_on_max_time(
    const std::vector<std::pair<int64_t, torch::Tensor>>& landings) {
  if (landings.empty()) return;
  std::vector<int64_t> members;
  std::vector<torch::Tensor> rows;
  for (const auto& [member, row] : landings) {
    members.push_back(member);
    rows.push_back(row);
  }
  auto points = torch::stack(rows);
  points.select(1, columns_.time()).zero_();
  torch::Tensor statistics;
  const auto slopes = derivative(points, members, &statistics);
  const auto index = index_tensor(members, y_.device());
  y_.index_copy_(0, index, points);
  slope_.index_copy_(0, index, slopes);
  const auto host = torch::cat({statistics, points.select(1, columns_.log_norm()).unsqueeze(0)})
                        .to(torch::kCPU, torch::kFloat64);
  const auto at = host.accessor<double, 2>();
  for (size_t i = 0; i < members.size(); ++i) {
    auto& m = states_[static_cast<size_t>(members[i])];
    const auto k = static_cast<int64_t>(i);
    m.time = {max_time_, 0.0};
    m.value = at[0][k];
    m.gradient = at[1][k];
    m.tangent = at[2][k];
    m.log_norm = at[3][k];
  }
}

// Whether the member's direction stands still: the KKT residual of its field at most
// direction_tol (on nets with kinks the field of its mode: at a kinked KKT point the field
// sliding along the kinks is radial).
bool FlowIntegrator::direction_converged(const MemberState& m) const {
  return m.tangent <= direction_tol_ * m.gradient;
}

}  // namespace ncflab::flow_detail
