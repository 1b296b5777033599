// Per-layer view of the weights on the unit sphere: norms, shares of ‖w‖² and how far
// each layer is from rank one, logged with the metrics.
#include <fmt/format.h>

#include "ncflab/builtin_hooks.h"

namespace ncflab {

std::vector<std::string> LayerProjectionHook::metric_names() const {
  std::vector<std::string> names;
  for (int64_t l = 1; l <= depth_; ++l) {
    names.push_back(fmt::format("layer{}_norm", l));
    names.push_back(fmt::format("layer{}_share", l));
    if (l <= hidden_layers_) names.push_back(fmt::format("layer{}_sv_ratio", l));
  }
  return names;
}

void LayerProjectionHook::metrics(const TrainState& state, const std::vector<int64_t>& rows,
                                  MetricColumns& columns) {
  torch::NoGradGuard no_grad;
  const auto& weights = *state.weights;
  const auto index = torch::tensor(rows, torch::kLong).to(weights.front().device());
  std::vector<torch::Tensor> norms2;
  for (const auto& w : weights) norms2.push_back(w.index_select(0, index).square().sum({1, 2}));
  const auto total = torch::stack(norms2).sum(0);
  for (size_t l = 0; l < weights.size(); ++l) {
    const auto norm = norms2[l].sqrt().to(torch::kCPU, torch::kFloat64);
    const auto share = (norms2[l] / total).to(torch::kCPU, torch::kFloat64);
    columns.emplace_back(fmt::format("layer{}_norm", l + 1),
                         std::vector<double>(norm.data_ptr<double>(), norm.data_ptr<double>() + norm.numel()));
    columns.emplace_back(fmt::format("layer{}_share", l + 1),
                         std::vector<double>(share.data_ptr<double>(), share.data_ptr<double>() + share.numel()));
    if (static_cast<int64_t>(l) < hidden_layers_) {
      // σ₂/σ₁ is scale-free, so the layer itself serves for W_l/‖W_l‖.
      const auto sv = torch::linalg_svdvals(weights[l].index_select(0, index).to(torch::kFloat64));
      const auto ratio = sv.size(-1) < 2 ? torch::zeros({static_cast<int64_t>(rows.size())}, torch::kFloat64)
                                         : (sv.select(-1, 1) / sv.select(-1, 0)).to(torch::kCPU);
      const auto contiguous = ratio.contiguous();
      columns.emplace_back(fmt::format("layer{}_sv_ratio", l + 1),
                           std::vector<double>(contiguous.data_ptr<double>(),
                                               contiguous.data_ptr<double>() + contiguous.numel()));
    }
  }
}

}  // namespace ncflab
