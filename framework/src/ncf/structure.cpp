// Rank-one structure metrics of a direction, computed from its SVDs (linalg_svd on
// CPU float64: these are small matrices, and the metrics want every digit).
#include "ncflab/ncf/structure.h"

#include <algorithm>
#include <cmath>

namespace ncflab {
namespace {

HiddenVectorStructure describe_hidden_vector(const torch::Tensor& vector, int64_t layer,
                                             double support_tol) {
  HiddenVectorStructure result;
  result.layer = layer;
  result.units = vector.size(0);
  const auto magnitudes = vector.abs();
  const double largest = magnitudes.max().item<double>();
  const auto nonzero = magnitudes > support_tol * largest;
  result.support = nonzero.sum().item<int64_t>();
  if (result.support == 0) return result;
  const int64_t positive = (nonzero & (vector > 0)).sum().item<int64_t>();
  result.sign_fraction =
      static_cast<double>(std::max(positive, result.support - positive)) / result.support;
  const auto kept = magnitudes.masked_select(nonzero);
  result.magnitude_spread =
      (kept.max().item<double>() - kept.min().item<double>()) / kept.max().item<double>();
  return result;
}

}  // namespace

DirectionStructure analyze_structure(const Ncf& ncf, const torch::Tensor& direction,
                                     const StructureOptions& options) {
  torch::NoGradGuard no_grad;
  const auto unit = unit_rows(direction.to(torch::kCPU, torch::kFloat64).reshape({1, -1}));
  const auto layers = ncf.layers(unit);
  // Hidden layers: all but a feed-forward net's output row (a single-layer model's W1 is one).
  const auto hidden = static_cast<size_t>(ncf.hidden_layers());
  const double total = static_cast<double>(ncf.total_degree());
  DirectionStructure result;
  result.rank_one = true;
  torch::Tensor first_left;
  torch::Tensor first_right;
  for (size_t l = 0; l < layers.size(); ++l) {
    const auto w = layers[l][0];
    LayerStructure layer;
    layer.norm2 = w.square().sum().item<double>();
    layer.target_norm2 = ncf.degrees()[l] / total;
    const auto svd = torch::linalg_svd(w, /*full_matrices=*/false, c10::nullopt);
    const auto& left = std::get<0>(svd);
    const auto& values = std::get<1>(svd);
    const auto& right_t = std::get<2>(svd);
    for (int64_t k = 0; k < values.size(0); ++k)
      layer.singular_values.push_back(values[k].item<double>());
    layer.sv_ratio = values.size(0) < 2 || layer.singular_values[0] == 0
                         ? 0.0
                         : layer.singular_values[1] / layer.singular_values[0];
    result.rank_one = result.rank_one && layer.sv_ratio < options.rank_one_tol();
    result.balance_error =
        std::max(result.balance_error, std::abs(layer.norm2 - layer.target_norm2));
    if (l < hidden) {
      result.hidden.push_back(describe_hidden_vector(left.select(1, 0), static_cast<int64_t>(l) + 1,
                                                     options.support_tol()));
    }
    if (l == 0) {
      first_left = left.select(1, 0);
      first_right = right_t[0];
    }
    result.layers.push_back(std::move(layer));
  }

  // Orient b so that the first hidden vector is mostly non-negative: then each hidden unit
  // computes σ(c·bᵀx) with c ≥ 0, and b is the input direction of the single-neuron problem.
  auto b = first_left.sum().item<double>() < 0 ? -first_right : first_right;
  for (int64_t k = 0; k < b.size(0); ++k) result.input_direction.push_back(b[k].item<double>());

  const auto& activation = ncf.options().activation();
  auto b_var = b.to(ncf.inputs().options()).clone().requires_grad_(true);
  torch::Tensor composed;
  {
    torch::AutoGradMode enable(true);
    composed = torch::matmul(ncf.inputs(), b_var);
    for (size_t k = 0; k < hidden; ++k) composed = poly_leaky_relu(composed, activation);
    const auto objective = (ncf.ybar() * composed).sum();
    const auto gradient = torch::autograd::grad({objective}, {b_var})[0].detach();
    const auto bd = b_var.detach();
    const auto tangent = gradient - (gradient * bd).sum() * bd;
    result.single_neuron_residual =
        (tangent.norm() / gradient.norm().clamp_min(1e-300)).item<double>();
  }
  return result;
}

}  // namespace ncflab
