// The stages of a Dormand–Prince trial step over the members taking one: the model's
// weights set to each stage point, the engine's gradient read back, and the norms the
// controller judges by. Two backends: batched ATen ops (any device) and per-member loops
// over contiguous CPU tensors, which skip ATen's per-op dispatch.
#include <ATen/Dispatch.h>

#include <array>
#include <cmath>

#include "ncflab/core/dormand_prince.h"
#include "ncflab/model/feedforward.h"
#include "ncflab/train/gradient_flow.h"
#include "ncflab/train/hook.h"

namespace ncflab {
namespace {

using namespace dormand_prince;

// [S, 1], true for the members outside `mask`.
torch::Tensor outside_rows(const std::vector<uint8_t>& mask, const torch::Tensor& like) {
  std::vector<int64_t> values(mask.begin(), mask.end());
  return torch::tensor(values, torch::kLong).to(like.device()).eq(0).unsqueeze(1);
}

}  // namespace

void GradientFlowStepper::write_weights(const torch::Tensor& flat) {
  torch::NoGradGuard no_grad;
  const auto layers = split_layers(flat, shapes_);
  for (size_t l = 0; l < weights_.size(); ++l) weights_[l].copy_(layers[l]);
}

torch::Tensor GradientFlowStepper::slope_at(const torch::Tensor& point,
                                            const std::vector<uint8_t>& mask,
                                            const torch::Tensor& outside) {
  write_weights(point);
  engine_.evaluate(mask, statistics_);
  // Members outside the mask keep stale gradients: zero them, so a step size of 0 leaves
  // their rows exactly where they are.
  return torch::neg(join_layers(engine_.gradients())).masked_fill(outside, 0.0);
}

torch::Tensor GradientFlowStepper::slope_everywhere(const torch::Tensor& point) {
  const std::vector<uint8_t> all(members_.size(), 1);
  return slope_at(point, all, outside_rows(all, point));
}

GradientFlowStepper::TrialOutcome GradientFlowStepper::stages(const std::vector<uint8_t>& stepping,
                                                              const std::vector<double>& sizes) {
  if (!host_loops_) return trial_tensors(stepping, sizes);
  TrialOutcome outcome;
  AT_DISPATCH_FLOATING_TYPES(point_.scalar_type(), "GradientFlowStepper::stages",
                             [&] { outcome = trial_loops<scalar_t>(stepping, sizes); });
  return outcome;
}

GradientFlowStepper::TrialOutcome GradientFlowStepper::trial_tensors(
    const std::vector<uint8_t>& stepping, const std::vector<double>& sizes) {
  const auto members = members_.size();
  const auto h = torch::tensor(sizes, torch::kFloat64).to(point_.options()).unsqueeze(1);
  const auto outside = outside_rows(stepping, point_);
  std::vector<torch::Tensor> slopes = {slope_.masked_fill(outside, 0.0)};
  torch::Tensor next;
  torch::Tensor before_last;  // the sixth stage's point, for the stiffness estimate
  for (size_t i = 0; i < kStages.size(); ++i) {
    const auto point = stage_point(point_, h, slopes, i);
    slopes.push_back(slope_at(point, stepping, outside));
    if (i + 2 == kStages.size()) before_last = point;
    if (i + 1 == kStages.size()) next = point;
  }
  const auto error = h * error_slope(slopes);
  const auto host = host_values(
      torch::stack({error.norm(2, -1), next.norm(2, -1), slopes.back().norm(2, -1),
                    (slopes[6] - slopes[5]).norm(2, -1), (next - before_last).norm(2, -1)}));
  const auto quantity = [&](size_t q) {
    return std::vector<double>(host.begin() + static_cast<int64_t>(q * members),
                               host.begin() + static_cast<int64_t>((q + 1) * members));
  };
  return {quantity(0), quantity(1), quantity(2), quantity(3), quantity(4), next, slopes.back()};
}

template <typename scalar_t>
GradientFlowStepper::TrialOutcome GradientFlowStepper::trial_loops(
    const std::vector<uint8_t>& stepping, const std::vector<double>& sizes) {
  // The same arithmetic as trial_tensors, element by element, in its order (so float64
  // stage points agree bit for bit), without an ATen op per stage: for small nets the
  // dispatch of ~25 ops per stage cost ~10× the gradient itself.
  const auto members = members_.size();
  const int64_t parameters = point_.size(1);
  // Scratch kept across trials: stages 1…6, the 5th-order points and the sixth stage's.
  if (loop_scratch_.empty()) {
    for (size_t j = 0; j < kError.size() + 2; ++j)
      loop_scratch_.push_back(torch::empty_like(point_));
  }
  const auto& next = loop_scratch_[kError.size()];
  const auto& before_last = loop_scratch_[kError.size() + 1];
  std::array<const scalar_t*, 7> slopes{};
  slopes[0] = slope_.data_ptr<scalar_t>();
  for (size_t j = 1; j < kError.size(); ++j) slopes[j] = loop_scratch_[j].data_ptr<scalar_t>();
  const scalar_t* point = point_.data_ptr<scalar_t>();
  const auto row = [&](size_t s) { return static_cast<int64_t>(s) * parameters; };
  for (size_t i = 0; i < kStages.size(); ++i) {
    const auto& a = kStages[i];
    scalar_t* target = i + 1 == kStages.size()   ? next.data_ptr<scalar_t>()
                       : i + 2 == kStages.size() ? before_last.data_ptr<scalar_t>()
                                                 : nullptr;
    for (size_t s = 0; s < members; ++s) {
      if (!stepping[s]) continue;
      const auto h = static_cast<scalar_t>(sizes[s]);
      int64_t p = row(s);
      for (size_t l = 0; l < weights_.size(); ++l) {
        const int64_t size = layer_sizes_[l];
        scalar_t* w = weights_[l].data_ptr<scalar_t>() + static_cast<int64_t>(s) * size;
        for (int64_t q = 0; q < size; ++q, ++p) {
          scalar_t increment = static_cast<scalar_t>(a[0]) * slopes[0][p];
          for (size_t j = 1; j <= i; ++j) {
            if (a[j] != 0) increment = increment + static_cast<scalar_t>(a[j]) * slopes[j][p];
          }
          const scalar_t y = point[p] + h * increment;
          w[q] = y;
          if (target != nullptr) target[p] = y;
        }
      }
    }
    engine_.evaluate(stepping, statistics_);
    scalar_t* slope = loop_scratch_[i + 1].data_ptr<scalar_t>();
    std::vector<torch::Tensor> gradients;
    for (const auto& g : engine_.gradients()) gradients.push_back(g.contiguous());
    for (size_t s = 0; s < members; ++s) {
      if (!stepping[s]) continue;
      int64_t p = row(s);
      for (size_t l = 0; l < gradients.size(); ++l) {
        const int64_t size = layer_sizes_[l];
        const scalar_t* gradient =
            gradients[l].data_ptr<scalar_t>() + static_cast<int64_t>(s) * size;
        for (int64_t q = 0; q < size; ++q, ++p) slope[p] = -gradient[q];
      }
    }
  }
  TrialOutcome outcome;
  for (auto* values : {&outcome.error, &outcome.next_norm, &outcome.next_speed,
                       &outcome.slope_change, &outcome.point_change}) {
    values->assign(members, 0.0);
  }
  const scalar_t* next_point = next.data_ptr<scalar_t>();
  const scalar_t* sixth = before_last.data_ptr<scalar_t>();
  for (size_t s = 0; s < members; ++s) {
    if (!stepping[s]) continue;
    const auto h = static_cast<scalar_t>(sizes[s]);
    double error = 0, norm = 0, speed = 0, slope_change = 0, point_change = 0;
    for (int64_t p = row(s); p < row(s) + parameters; ++p) {
      scalar_t weighted = static_cast<scalar_t>(kError[0]) * slopes[0][p];
      for (size_t j = 1; j < kError.size(); ++j) {
        if (kError[j] != 0) weighted = weighted + static_cast<scalar_t>(kError[j]) * slopes[j][p];
      }
      const double e = static_cast<double>(h * weighted);
      const double y = next_point[p];
      const double k = slopes[6][p];
      const double dk = static_cast<double>(slopes[6][p] - slopes[5][p]);
      const double dy = static_cast<double>(next_point[p] - sixth[p]);
      error += e * e;
      norm += y * y;
      speed += k * k;
      slope_change += dk * dk;
      point_change += dy * dy;
    }
    outcome.error[s] = std::sqrt(error);
    outcome.next_norm[s] = std::sqrt(norm);
    outcome.next_speed[s] = std::sqrt(speed);
    outcome.slope_change[s] = std::sqrt(slope_change);
    outcome.point_change[s] = std::sqrt(point_change);
  }
  outcome.next = next;
  outcome.slope = loop_scratch_[kError.size() - 1];
  return outcome;
}

}  // namespace ncflab
