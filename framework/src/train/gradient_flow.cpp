// Gradient-flow training: the stepping of each member (start, resume, accept or reject,
// step-size control), rows by dense output, and the escape crossing found on the step's
// interpolant. The stages' arithmetic is in gradient_flow_stages.cpp.
#include "ncflab/train/gradient_flow.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>

#include "ncflab/core/dormand_prince.h"
#include "ncflab/model/feedforward.h"
#include "ncflab/train/hook.h"

namespace ncflab {
namespace {

using namespace dormand_prince;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// Hairer & Wanner's stiffness test for DOPRI5: h·λ estimated from the last two stages
// above this bound on this many accepted steps in a row means stability, not accuracy,
// limits the step (the flow has reached a stiff region, e.g. a converging loss).
constexpr double kStiffBound = 3.25;
constexpr int64_t kStiffSteps = 15;
// Each scan of the crossing step's norm uses this many pieces before bisecting.
constexpr int kCrossingPieces = 64;

}  // namespace

double minimum_rtol(torch::Dtype dtype) {
  const double epsilon = dtype == torch::kFloat32 ? std::numeric_limits<float>::epsilon()
                                                  : std::numeric_limits<double>::epsilon();
  return 64 * epsilon;
}

void CompensatedTime::add(double h) {
  // Knuth's two-sum: the rounding error of high + h, exactly, kept in low.
  const double sum = high + h;
  const double back = sum - high;
  low += (high - (sum - back)) + (h - back);
  high = sum + low;
  low -= high - sum;
}

double CompensatedTime::minus(double t) const { return (high - t) + low; }

GradientFlowStepper::GradientFlowStepper(TrainingEngine& engine, std::vector<torch::Tensor> weights,
                                         GradientFlowOptions options)
    : engine_(engine), weights_(std::move(weights)), options_(options) {
  TORCH_CHECK(options_.rtol() >= 0 && options_.rtol() < 1,
              "GradientFlowStepper – rtol must be in [0, 1) – got ", options_.rtol());
  TORCH_CHECK(options_.atol() >= 0, "GradientFlowStepper – atol must be >= 0 – got ",
              options_.atol());
  TORCH_CHECK(options_.rtol() > 0 || options_.atol() > 0,
              "GradientFlowStepper – rtol and atol must not both be 0");
  TORCH_CHECK(options_.escape_radius() > 0,
              "GradientFlowStepper – escape_radius must be > 0 – got ", options_.escape_radius());
  TORCH_CHECK(options_.kink_step() >= 0 && options_.kink_step() < 1,
              "GradientFlowStepper – kink_step must be in [0, 1) – got ", options_.kink_step());
  for (const auto& w : weights_) {
    shapes_.push_back({w.size(1), w.size(2)});
    layer_sizes_.push_back(w.size(1) * w.size(2));
  }
  host_loops_ = options_.host_loops() && weights_.front().device().is_cpu() &&
                std::all_of(weights_.begin(), weights_.end(),
                            [](const torch::Tensor& w) { return w.is_contiguous(); });
  // Each step rounds w to its dtype (~1 ulp of ‖w‖, float32: 1e-7), an error the estimate
  // does not see: a tighter rtol buys steps, not accuracy.
  options_.rtol(std::max(options_.rtol(), minimum_rtol(weights_.front().scalar_type())));
  members_.resize(static_cast<size_t>(weights_.front().size(0)));
}

void GradientFlowStepper::begin_at(torch::Tensor point) {
  point_ = std::move(point);
  slope_ = slope_everywhere(point_);
  start_slope_ = slope_.clone();
  const auto norms = host_values(point_.norm(2, -1));
  const auto speeds = host_values(slope_.norm(2, -1));
  for (size_t s = 0; s < members_.size(); ++s) {
    members_[s] = Member{};
    members_[s].norm = norms[s];
    members_[s].speed = speeds[s];
  }
}

void GradientFlowStepper::start(std::vector<int64_t>& evaluations) {
  torch::NoGradGuard no_grad;
  const auto members = members_.size();
  begin_at(join_layers(weights_).clone());
  record_ = std::make_shared<FlowRestart>();
  record_->start = point_.clone();
  record_->start_time.assign(members, 0.0);
  record_->start_time_low.assign(members, 0.0);
  record_->after_rejection.assign(members, 0);
  record_->rejected.assign(members, 0);
  record_->stiff_time.assign(members, kNaN);
  record_->previous_error.assign(members, 0.0);
  record_->previous_step.assign(members, 0.0);
  record_->stiff_steps.assign(members, 0);
  for (size_t s = 0; s < members; ++s) {
    auto& m = members_[s];
    // The first step moves w by a fixed fraction of ‖w‖: scale-free, so δ = 1e-8 starts
    // as well as δ = 1 (a zero gradient gives a unit step, which the controller grows).
    m.step_size = m.speed > 0 && m.norm > 0 ? kFirstStepFraction * m.norm / m.speed : 1.0;
    record_->step_size.push_back(m.step_size);
    evaluations[s] += 1;
  }
  write_weights(point_);
}

void GradientFlowStepper::resume(const FlowRestart& saved, const TrainState& state) {
  torch::NoGradGuard no_grad;
  const auto members = members_.size();
  TORCH_CHECK(saved.start.defined() && saved.start.dim() == 2 &&
                  saved.start.size(0) == static_cast<int64_t>(members),
              "GradientFlowStepper::resume – the record's start must be [S, P]");
  const auto rows = join_layers(weights_);  // the checkpoint's row weights, kept for later
  begin_at(saved.start.to(rows.options()).clone());
  record_ = std::make_shared<FlowRestart>(saved);
  record_->start = point_.clone();
  for (size_t s = 0; s < members; ++s) {
    auto& m = members_[s];
    m.time = m.start_time = {saved.start_time[s], saved.start_time_low[s]};
    m.step_size = saved.step_size[s];
    m.after_rejection = saved.after_rejection[s] != 0;
    m.last_error = saved.previous_error[s];
    m.last_step = saved.previous_step[s];
    // A member with accepted steps took the record's step last: take it again.
    m.replay = state.active[s] && state.steps_done[s] > 0;
  }
  write_weights(rows);
}

int64_t GradientFlowStepper::advance(TrainState& state, const std::vector<double>& targets) {
  torch::NoGradGuard no_grad;
  const auto members = members_.size();
  for (size_t s = 0; s < members; ++s) {
    if (state.active[s]) members_[s].stop = FlowStop::none;
  }
  // Members that stopped (escape, budget, max_time, the trainer's checks) keep their last
  // row as their final weights: park their integration there, where a zero step keeps it.
  std::vector<int64_t> frozen;
  for (size_t s = 0; s < members; ++s) {
    if (!state.active[s]) frozen.push_back(static_cast<int64_t>(s));
  }
  if (!frozen.empty()) {
    const auto index = torch::tensor(frozen, torch::kLong).to(point_.device());
    point_.index_copy_(0, index, join_layers(weights_).index_select(0, index));
  }
  int64_t rounds = 0;
  for (;;) {
    std::vector<uint8_t> stepping(members, 0);
    bool any = false;
    for (size_t s = 0; s < members; ++s) {
      auto& m = members_[s];
      if (!state.active[s] || m.stop != FlowStop::none || m.time.minus(targets[s]) >= 0) continue;
      // A member that crossed r_esc and stops there takes no step past its crossing.
      if (options_.stop_at_escape() && m.crossing) continue;
      if (state.steps_done[s] >= options_.max_steps() && !m.replay) {
        m.stop = FlowStop::budget;
        continue;
      }
      // The flow is autonomous: a step far below t's resolution still moves w (and t keeps
      // it to double-double accuracy); only an underflowed step size cannot go on.
      if (!(m.step_size >= std::numeric_limits<double>::min())) {
        m.stop = FlowStop::failed;
        continue;
      }
      stepping[s] = 1;
      any = true;
    }
    if (!any) break;
    trial(stepping, state);
    ++rounds;
  }
  // Each active member's row: its escape crossing, its target inside the last step, or
  // where it stopped.
  auto rows = point_.clone();
  for (size_t s = 0; s < members; ++s) {
    if (!state.active[s]) continue;
    auto& m = members_[s];
    const auto i = static_cast<int64_t>(s);
    if (m.crossing && options_.stop_at_escape() && m.crossing->time <= targets[s]) {
      m.stop = FlowStop::escaped;
      rows[i].copy_(m.crossing->point);
      state.times[s] = m.crossing->time;
    } else if (m.stop == FlowStop::none) {
      rows[i].copy_(dense(s, targets[s]));
      state.times[s] = targets[s];
    } else {
      state.times[s] = m.time.high;
    }
  }
  write_weights(rows);
  return rounds;
}

void GradientFlowStepper::trial(const std::vector<uint8_t>& stepping, TrainState& state) {
  const auto members = members_.size();
  std::vector<double> sizes(members, 0.0);
  for (size_t s = 0; s < members; ++s) {
    if (stepping[s]) sizes[s] = members_[s].step_size;
  }
  const TrialOutcome outcome = stages(stepping, sizes);
  std::vector<int64_t> accepted;
  for (size_t s = 0; s < members; ++s) {
    if (!stepping[s]) continue;
    if (!members_[s].replay) state.evaluations[s] += static_cast<int64_t>(kStages.size());
    const double stiffness = outcome.point_change[s] > 0
                                 ? sizes[s] * outcome.slope_change[s] / outcome.point_change[s]
                                 : 0.0;
    const bool finite = std::isfinite(outcome.error[s]) && std::isfinite(outcome.next_norm[s]) &&
                        std::isfinite(outcome.next_speed[s]) && std::isfinite(stiffness);
    if (judge(s, outcome.error[s], outcome.next_norm[s], outcome.next_speed[s], stiffness, finite,
              state)) {
      accepted.push_back(static_cast<int64_t>(s));
    }
  }
  if (accepted.empty()) return;
  if (host_loops_) {
    // Contiguous CPU rows: plain copies.
    const auto bytes = static_cast<size_t>(point_.size(1)) * point_.element_size();
    const auto row = [&](const torch::Tensor& t, int64_t s) {
      return static_cast<char*>(t.data_ptr()) + static_cast<size_t>(s) * bytes;
    };
    for (int64_t s : accepted) {
      std::memcpy(row(record_->start, s), row(point_, s), bytes);
      std::memcpy(row(start_slope_, s), row(slope_, s), bytes);
      std::memcpy(row(point_, s), row(outcome.next, s), bytes);
      std::memcpy(row(slope_, s), row(outcome.slope, s), bytes);
    }
  } else {
    const auto index = torch::tensor(accepted, torch::kLong).to(point_.device());
    record_->start.index_copy_(0, index, point_.index_select(0, index));
    start_slope_.index_copy_(0, index, slope_.index_select(0, index));
    point_.index_copy_(0, index, outcome.next.index_select(0, index));
    slope_.index_copy_(0, index, outcome.slope.index_select(0, index));
  }
  for (int64_t a : accepted) {
    const auto s = static_cast<size_t>(a);
    if (state.escape[s].step < 0 && !members_[s].crossing &&
        members_[s].norm >= options_.escape_radius()) {
      find_crossing(s, state.steps_done[s]);
    }
  }
}

bool GradientFlowStepper::judge(size_t s, double error, double next_norm, double next_speed,
                                double stiffness, bool finite, TrainState& state) {
  auto& m = members_[s];
  const double step_size = m.step_size;
  const double ratio = error / (options_.atol() + options_.rtol() * std::max(m.norm, next_norm));
  const double factor = step_size_factor(ratio, finite);
  // Across a kink (p = 1) ∇ℓ jumps and no step is small enough for the error test; a step
  // that moves w by at most kink_step·‖w‖ is taken anyway, so the flow slides along kinks
  // with an error of that order instead of stalling.
  const double floor_step = m.speed > 0 ? options_.kink_step() * m.norm / m.speed : 0.0;
  const bool forced = finite && step_size <= floor_step;
  const bool replay = m.replay;
  m.replay = false;

  if (!(finite && (ratio <= 1 || forced))) {
    m.step_size = std::max(step_size * std::min(1.0, factor), floor_step);
    m.after_rejection = true;
    if (!replay) ++record_->rejected[s];
    return false;
  }
  // The controller's memory before this step, so a resumed run repeats its decisions.
  record_->previous_error[s] = m.last_error;
  record_->previous_step[s] = m.last_step;
  const double accepted_factor =
      finite && !forced ? accepted_step_size_factor(ratio, step_size, m.last_error, m.last_step)
                        : factor;
  m.start_time = m.time;
  record_->start_time[s] = m.time.high;
  record_->start_time_low[s] = m.time.low;
  record_->step_size[s] = m.last_step = step_size;
  record_->after_rejection[s] = m.after_rejection ? 1 : 0;
  m.last_error = ratio;
  m.time.add(step_size);
  m.norm = next_norm;
  m.speed = next_speed;
  // After a rejection the step may not grow at once (Hairer, Nørsett & Wanner II.4).
  m.step_size = step_size * (m.after_rejection ? std::min(1.0, accepted_factor) : accepted_factor);
  if (options_.kink_step() > 0 && next_speed > 0) {
    m.step_size = std::max(m.step_size, options_.kink_step() * next_norm / next_speed);
  }
  m.after_rejection = false;
  if (!replay) {
    ++state.steps_done[s];
    auto& stiff = record_->stiff_steps[s];
    stiff = stiffness > kStiffBound ? stiff + 1 : 0;
    if (stiff >= kStiffSteps && std::isnan(record_->stiff_time[s]))
      record_->stiff_time[s] = m.time.high;
  }
  return true;
}

void GradientFlowStepper::find_crossing(size_t s, int64_t step) {
  const auto i = static_cast<int64_t>(s);
  const auto& m = members_[s];
  // The step's cubic Hermite interpolant y(θ) = c0 + c1θ + c2θ² + c3θ³; ‖y(θ)‖² is a
  // polynomial whose coefficients come from the Gram matrix of the c's.
  const auto y0 = record_->start[i];
  const auto y1 = point_[i];
  const auto k0 = start_slope_[i] * m.last_step;
  const auto k1 = slope_[i] * m.last_step;
  const auto c = torch::stack({y0, k0, 3 * (y1 - y0) - 2 * k0 - k1, 2 * (y0 - y1) + k0 + k1});
  const auto gram = host_values(torch::matmul(c, c.t()));
  const double target = options_.escape_radius() * options_.escape_radius();
  const auto excess = [&](double theta) {
    const std::array<double, 4> powers = {1, theta, theta * theta, theta * theta * theta};
    double value = -target;
    for (size_t a = 0; a < 4; ++a) {
      for (size_t b = 0; b < 4; ++b) value += gram[a * 4 + b] * powers[a] * powers[b];
    }
    return value;
  };
  // The first piece on which ‖y‖ reaches r_esc, then bisection inside it.
  double low = 0;
  double high = 1;
  for (int piece = 1; piece <= kCrossingPieces; ++piece) {
    const double theta = static_cast<double>(piece) / kCrossingPieces;
    if (excess(theta) >= 0) {
      high = theta;
      break;
    }
    low = theta;
  }
  for (int iteration = 0; iteration < 60; ++iteration) {
    const double mid = 0.5 * (low + high);
    (excess(mid) < 0 ? low : high) = mid;
  }
  FlowCrossing crossing;
  crossing.time = m.start_time.high + (m.start_time.low + high * m.last_step);
  crossing.step = step;
  crossing.point = hermite(y0, start_slope_[i], y1, slope_[i], m.last_step, high).clone();
  members_[s].crossing = crossing;
}

torch::Tensor GradientFlowStepper::dense(size_t s, double t) const {
  const auto& m = members_[s];
  const auto i = static_cast<int64_t>(s);
  if (m.time.minus(t) <= 0 || m.last_step == 0) return point_[i];
  const double theta = std::max(0.0, -m.start_time.minus(t) / m.last_step);
  return hermite(record_->start[i], start_slope_[i], point_[i], slope_[i], m.last_step, theta);
}

}  // namespace ncflab
