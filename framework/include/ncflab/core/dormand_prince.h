// The Dormand–Prince 5(4) pair shared by both adaptive integrators (the NCF flow and
// gradient-flow training): the tableau, the step-size controller and the dense output.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cmath>

namespace ncflab::dormand_prince {

/// Dormand & Prince (1980): row i builds stage i+2 from stages 1…i+1. The last row is the
/// 5th-order solution itself, so its stage (the slope at the new point) is the first stage
/// of the next step (FSAL).
inline constexpr std::array<std::array<double, 6>, 6> kStages = {{
    {1.0 / 5},
    {3.0 / 40, 9.0 / 40},
    {44.0 / 45, -56.0 / 15, 32.0 / 9},
    {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729},
    {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656},
    {35.0 / 384, 0.0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84},
}};
/// 5th-order minus embedded 4th-order weights, stages 1…7: the local error estimate.
inline constexpr std::array<double, 7> kError = {
    71.0 / 57600, 0.0, -71.0 / 16695, 71.0 / 1920, -17253.0 / 339200, 22.0 / 525, -1.0 / 40};

/// Step-size controller: h ← h·clamp(safety·err^(−1/5), min, max) (order 4 of the estimate).
inline constexpr double kSafety = 0.9;
inline constexpr double kMinFactor = 0.2;
inline constexpr double kMaxFactor = 5.0;
/// The first step moves the state by this fraction of its norm; the controller takes over.
inline constexpr double kFirstStepFraction = 1e-3;

/// The factor the controller scales h by after a step whose error is `ratio` times the
/// tolerance (≤ 1: accepted). A non-finite step shrinks h as much as allowed.
inline double step_size_factor(double ratio, bool finite) {
  if (!finite) return kMinFactor;
  if (ratio == 0) return kMaxFactor;
  return std::clamp(kSafety * std::pow(ratio, -0.2), kMinFactor, kMaxFactor);
}

/// The factor after an accepted step that follows an accepted one: the smaller of the plain
/// controller's and Gustafsson's predictive one (as in Hairer & Wanner's RADAU5). Toward a
/// blow-up the error grows from step to step at a fixed h, and the plain controller,
/// reacting only to the last error, lags one rejection behind at every step; the predictive
/// one extrapolates the trend from the previous accepted step (error `previous_ratio` at
/// step size `previous_h`). Errors below 1e-4 count as 1e-4, so round-off cannot steer it.
inline double accepted_step_size_factor(double ratio, double h, double previous_ratio,
                                        double previous_h) {
  const double plain = step_size_factor(ratio, true);
  if (!(previous_h > 0) || !(previous_ratio > 0)) return plain;
  const double error = std::max(ratio, 1e-4);
  const double trend = std::max(previous_ratio, 1e-4) / error;
  const double predictive =
      (h / previous_h) * kSafety * std::pow(error, -0.2) * std::pow(trend, 0.2);
  return std::min(plain, std::clamp(predictive, kMinFactor, kMaxFactor));
}

/// y + h·Σ_j a_j·k_j for stage row `row` (weights kStages[row]) over `slopes` (the stages
/// so far); `h` broadcasts against the slopes (a scalar tensor or one value per row).
inline torch::Tensor stage_point(const torch::Tensor& start, const torch::Tensor& h,
                                 const std::vector<torch::Tensor>& slopes, size_t row) {
  auto increment = kStages[row][0] * slopes[0];
  for (size_t j = 1; j <= row; ++j) {
    if (kStages[row][j] != 0) increment = increment + kStages[row][j] * slopes[j];
  }
  return start + h * increment;
}

/// Σ_j e_j·k_j over the seven stages: the local error is h times this.
inline torch::Tensor error_slope(const std::vector<torch::Tensor>& slopes) {
  auto error = kError[0] * slopes[0];
  for (size_t j = 1; j < kError.size(); ++j) {
    if (kError[j] != 0) error = error + kError[j] * slopes[j];
  }
  return error;
}

/// The state at fraction s ∈ [0, 1] of a step of length h from y0 (slope k0) to y1 (slope
/// k1): the cubic Hermite interpolant, 4th-order accurate like the step's error estimate.
inline torch::Tensor hermite(const torch::Tensor& y0, const torch::Tensor& k0,
                             const torch::Tensor& y1, const torch::Tensor& k1, double h, double s) {
  const double c = 1 - s;
  return (1 + 2 * s) * c * c * y0 + s * c * c * h * k0 + s * s * (3 - 2 * s) * y1 -
         s * s * c * h * k1;
}

}  // namespace ncflab::dormand_prince
