// Where the direction of training stands against the theory: the constrained NCF's KKT
// conditions at û = w/‖w‖ and the NCF flow started from the same w0 (SPEC §1).
#include "ncflab/train/hooks/kkt_comparison_hook.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "ncflab/ncf/unit_matching.h"

namespace ncflab {

KktComparisonHook::KktComparisonHook(std::shared_ptr<const Ncf> ncf, Reference reference,
                                     double kink_tol)
    : ncf_(std::move(ncf)), reference_(std::move(reference)), kink_tol_(kink_tol) {}

std::vector<std::string> KktComparisonHook::metric_names() const {
  std::vector<std::string> names;
  for (const auto& column : columns()) names.push_back(column.name);
  return names;
}

std::vector<KktComparisonHook::Column> KktComparisonHook::columns() const {
  std::vector<Column> columns = {{"ncf", &KktComparison::ncf},
                                 {"kkt_residual", &KktComparison::kkt_residual}};
  if (kink_tol_ > 0) columns.push_back({"kink_residual", &KktComparison::kink_residual});
  if (reference_.flow_direction.defined()) {
    columns.push_back({"cos_to_flow", &KktComparison::cos_to_flow});
  }
  if (!reference_.flow_samples.empty()) {
    columns.push_back({"cos_to_flow_now", &KktComparison::cos_to_flow_now});
  }
  if (!reference_.kkt_points.empty()) columns.push_back({"cos_to_kkt", &KktComparison::cos_to_kkt});
  return columns;
}

void KktComparisonHook::metrics(const TrainState& state, const std::vector<int64_t>& rows,
                                MetricColumns& columns) {
  const auto compared = compare(state, rows);
  for (const auto& column : this->columns()) {
    std::vector<double> values;
    for (const auto& comparison : compared) values.push_back(comparison.*column.field);
    columns.emplace_back(column.name, std::move(values));
  }
  if (last_.size() < static_cast<size_t>(state.members())) {
    last_.resize(static_cast<size_t>(state.members()));
  }
  for (size_t r = 0; r < rows.size(); ++r) last_[static_cast<size_t>(rows[r])] = compared[r];
}

std::vector<KktComparison> KktComparisonHook::compare(const TrainState& state,
                                                      const std::vector<int64_t>& rows) const {
  torch::NoGradGuard no_grad;
  std::vector<KktComparison> compared(rows.size());
  const auto set = [&](double KktComparison::*field, const std::vector<double>& values) {
    for (size_t r = 0; r < rows.size(); ++r) compared[r].*field = values[r];
  };
  const auto& weights = *state.weights;
  const auto index = torch::tensor(rows, torch::kLong).to(weights.front().device());
  const auto unit =
      unit_rows(join_layers(weights).index_select(0, index)).to(ncf_->inputs().options());
  set(&KktComparison::ncf, host_values(ncf_->value(unit)));
  set(&KktComparison::kkt_residual, host_values(ncf_->smooth_residual(unit)));
  if (kink_tol_ > 0) {
    set(&KktComparison::kink_residual, host_values(ncf_->kink_residual(unit, kink_tol_).residual));
  }
  if (reference_.flow_direction.defined()) {
    const auto flow =
        reference_.flow_direction.to(unit.options()).index_select(0, index.to(unit.device()));
    set(&KktComparison::cos_to_flow, host_values((unit * flow).sum(-1)));
  }
  // The flow samples and KKT points live on the host: copy û there once.
  const bool on_host = !reference_.flow_samples.empty() || !reference_.kkt_points.empty();
  const auto host = on_host ? unit.to(torch::kCPU, torch::kFloat64) : torch::Tensor();
  if (!reference_.flow_samples.empty()) {
    const bool on_grid = state.step % reference_.log_every == 0;
    const int64_t sample = state.step / reference_.log_every;
    for (size_t r = 0; r < rows.size(); ++r) {
      const auto member = static_cast<size_t>(rows[r]);
      const auto& samples = reference_.flow_samples[member];
      const auto& times = reference_.sample_times[member];
      const bool scheduled = on_grid && sample < static_cast<int64_t>(times.size()) &&
                             times[static_cast<size_t>(sample)] == state.times[member];
      if (scheduled && samples.defined() && sample < samples.size(0)) {
        const auto u = samples[sample];
        compared[r].cos_to_flow_now =
            (host[static_cast<int64_t>(r)] * u).sum().item<double>() / u.norm().item<double>();
      }
    }
  }
  if (!reference_.kkt_points.empty()) {
    for (size_t r = 0; r < rows.size(); ++r) {
      const auto row = host[static_cast<int64_t>(r)];
      double cosine = -1;
      for (const auto& point : reference_.kkt_points) {
        const auto aligned = align_hidden_units(row, point, ncf_->options());
        cosine = std::max(cosine, (row * aligned).sum().item<double>());
      }
      compared[r].cos_to_kkt = cosine;
    }
  }
  return compared;
}

const KktComparison& KktComparisonHook::last(int64_t s) const {
  static const KktComparison none;
  const auto i = static_cast<size_t>(s);
  return i < last_.size() ? last_[i] : none;
}

}  // namespace ncflab
