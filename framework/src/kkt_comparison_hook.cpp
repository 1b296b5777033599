// Where the direction of training stands against the theory: the constrained NCF's KKT
// conditions at û = w/‖w‖ and the NCF flow started from the same w0 (SPEC §1).
#include <algorithm>
#include <cmath>
#include <limits>

#include "ncflab/builtin_hooks.h"
#include "ncflab/unit_matching.h"

namespace ncflab {
namespace {

std::vector<double> to_vector(const torch::Tensor& t) {
  const auto host = t.to(torch::kCPU, torch::kFloat64).contiguous();
  return std::vector<double>(host.data_ptr<double>(), host.data_ptr<double>() + host.numel());
}

}  // namespace

KktComparisonHook::KktComparisonHook(std::shared_ptr<const Ncf> ncf, Reference reference,
                                     double kink_tolerance)
    : ncf_(std::move(ncf)), reference_(std::move(reference)), kink_tolerance_(kink_tolerance) {}

std::vector<std::string> KktComparisonHook::metric_names() const {
  std::vector<std::string> names = {"ncf", "kkt_residual"};
  if (kink_tolerance_ > 0) names.push_back("kink_residual");
  if (reference_.flow_direction.defined()) names.push_back("cos_to_flow");
  if (!reference_.flow_samples.empty()) names.push_back("cos_to_flow_now");
  if (!reference_.kkt_points.empty()) names.push_back("cos_to_kkt");
  return names;
}

void KktComparisonHook::metrics(const TrainState& state, const std::vector<int64_t>& rows,
                                MetricColumns& columns) {
  torch::NoGradGuard no_grad;
  const auto& weights = *state.weights;
  const auto index = torch::tensor(rows, torch::kLong).to(weights.front().device());
  const auto unit = unit_rows(join_layers(weights).index_select(0, index))
                        .to(ncf_->inputs().options());
  columns.emplace_back("ncf", to_vector(ncf_->value(unit)));
  columns.emplace_back("kkt_residual", to_vector(ncf_->smooth_residual(unit)));
  if (kink_tolerance_ > 0) {
    columns.emplace_back("kink_residual", to_vector(ncf_->kink_residual(unit, kink_tolerance_).residual));
  }
  if (reference_.flow_direction.defined()) {
    const auto flow = reference_.flow_direction.to(unit.options())
                          .index_select(0, index.to(unit.device()));
    columns.emplace_back("cos_to_flow", to_vector((unit * flow).sum(-1)));
  }
  // The flow samples and KKT points live on the host: copy û there once.
  const bool on_host = !reference_.flow_samples.empty() || !reference_.kkt_points.empty();
  const auto host = on_host ? unit.to(torch::kCPU, torch::kFloat64) : torch::Tensor();
  if (!reference_.flow_samples.empty()) {
    std::vector<double> cosines;
    const bool on_grid = state.step % reference_.log_every == 0;
    const int64_t sample = state.step / reference_.log_every;
    for (size_t r = 0; r < rows.size(); ++r) {
      const auto& samples = reference_.flow_samples[static_cast<size_t>(rows[r])];
      double cosine = std::numeric_limits<double>::quiet_NaN();
      if (on_grid && samples.defined() && sample < samples.size(0)) {
        const auto u = samples[sample];
        cosine = (host[static_cast<int64_t>(r)] * u).sum().item<double>() / u.norm().item<double>();
      }
      cosines.push_back(cosine);
    }
    columns.emplace_back("cos_to_flow_now", cosines);
  }
  if (!reference_.kkt_points.empty()) {
    std::vector<double> best;
    for (size_t r = 0; r < rows.size(); ++r) {
      const auto row = host[static_cast<int64_t>(r)];
      double cosine = -1;
      for (const auto& point : reference_.kkt_points) {
        const auto aligned = align_hidden_units(row, point, ncf_->options());
        cosine = std::max(cosine, (row * aligned).sum().item<double>());
      }
      best.push_back(cosine);
    }
    columns.emplace_back("cos_to_kkt", best);
  }
}

}  // namespace ncflab
