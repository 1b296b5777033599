// Per-layer view of the weights on the unit sphere: norms, shares of ‖w‖² and how far
// each layer is from rank one, logged with the metrics.
#include "ncflab/train/hooks/layer_statistics_hook.h"

#include <fmt/format.h>

#include <limits>

namespace ncflab {

LayerStatisticsHook::LayerStatisticsHook(int64_t depth, int64_t hidden_layers)
    : depth_(depth), hidden_layers_(hidden_layers) {}

std::vector<std::string> LayerStatisticsHook::metric_names() const {
  std::vector<std::string> names;
  for (int64_t l = 1; l <= depth_; ++l) {
    names.push_back(fmt::format("layer{}_norm", l));
    names.push_back(fmt::format("layer{}_share", l));
    if (l <= hidden_layers_) names.push_back(fmt::format("layer{}_sv_ratio", l));
  }
  return names;
}

void LayerStatisticsHook::metrics(const TrainState& state, const std::vector<int64_t>& rows,
                                  MetricColumns& columns) {
  torch::NoGradGuard no_grad;
  const auto& weights = *state.weights;
  const auto index = torch::tensor(rows, torch::kLong).to(weights.front().device());
  std::vector<torch::Tensor> norms2;
  for (const auto& w : weights) norms2.push_back(w.index_select(0, index).square().sum({1, 2}));
  const auto total = torch::stack(norms2).sum(0);
  if (last_.size() < static_cast<size_t>(state.members())) {
    last_.resize(static_cast<size_t>(state.members()));
  }
  for (int64_t s : rows) {
    last_[static_cast<size_t>(s)].assign(weights.size(),
                                         {0, 0, std::numeric_limits<double>::quiet_NaN()});
  }
  const auto remember = [&](size_t l, double LayerStatistics::*field,
                            const std::vector<double>& values) {
    for (size_t r = 0; r < rows.size(); ++r)
      last_[static_cast<size_t>(rows[r])][l].*field = values[r];
  };
  for (size_t l = 0; l < weights.size(); ++l) {
    const auto norm = host_values(norms2[l].sqrt());
    const auto share = host_values(norms2[l] / total);
    remember(l, &LayerStatistics::norm, norm);
    remember(l, &LayerStatistics::share, share);
    columns.emplace_back(fmt::format("layer{}_norm", l + 1), norm);
    columns.emplace_back(fmt::format("layer{}_share", l + 1), share);
    if (static_cast<int64_t>(l) < hidden_layers_) {
      // σ₂/σ₁ is scale-free, so the layer itself serves for W_l/‖W_l‖.
      const auto sv = torch::linalg_svdvals(weights[l].index_select(0, index).to(torch::kFloat64));
      const auto ratio = sv.size(-1) < 2
                             ? torch::zeros({static_cast<int64_t>(rows.size())}, torch::kFloat64)
                             : (sv.select(-1, 1) / sv.select(-1, 0)).to(torch::kCPU);
      const auto sv_ratio = host_values(ratio);
      remember(l, &LayerStatistics::sv_ratio, sv_ratio);
      columns.emplace_back(fmt::format("layer{}_sv_ratio", l + 1), sv_ratio);
    }
  }
}

const std::vector<LayerStatistics>& LayerStatisticsHook::last(int64_t s) const {
  static const std::vector<LayerStatistics> none;
  const auto i = static_cast<size_t>(s);
  return i < last_.size() ? last_[i] : none;
}

}  // namespace ncflab
