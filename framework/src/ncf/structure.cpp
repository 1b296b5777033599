// Rank-one structure metrics of a direction, computed from its SVDs (linalg_svd on
// CPU float64: these are small matrices, and the metrics want every digit), and the
// rank-one KKT conditions as conditions: b's single-neuron problem and the construction.
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

// g_ε = ε_K·σ(ε_{K−1}·σ(⋯ε_2·σ(z))) (σ applied `compositions` times, `signs` = ε_2 … ε_K or
// empty for all +1) and g_ε' along the composition.
std::pair<torch::Tensor, torch::Tensor> composed_activation(const torch::Tensor& z,
                                                            const PolyLeakyReLUOptions& options,
                                                            int64_t compositions,
                                                            const std::vector<int>& signs) {
  const auto sign = [&signs](int64_t k) {
    return signs.empty() ? 1.0 : static_cast<double>(signs[static_cast<size_t>(k)]);
  };
  auto value = z;
  auto slope = torch::ones_like(z);
  for (int64_t k = 0; k < compositions; ++k) {
    slope = slope * poly_leaky_relu_derivative(value, options) * sign(k);
    value = poly_leaky_relu(value, options) * sign(k);
  }
  return {value, slope};
}

}  // namespace

SingleNeuronKkt single_neuron_kkt(const Ncf& ncf, const torch::Tensor& b_in, double kink_tol,
                                  const std::vector<int>& chain_signs) {
  torch::NoGradGuard no_grad;
  const auto inputs = ncf.inputs().to(torch::kCPU, torch::kFloat64);
  const auto ybar = ncf.ybar().to(torch::kCPU, torch::kFloat64);
  auto b = b_in.to(torch::kCPU, torch::kFloat64).flatten();
  b = b / b.norm();
  const auto& activation = ncf.options().activation();
  const int64_t compositions = ncf.hidden_layers();
  TORCH_CHECK(chain_signs.empty() || static_cast<int64_t>(chain_signs.size()) == compositions,
              "single_neuron_kkt – need ", compositions, " chain signs – got ", chain_signs.size());
  const auto z = torch::matmul(inputs, b);
  const auto [value, slope] = composed_activation(z, activation, compositions, chain_signs);
  SingleNeuronKkt result;
  result.value = (ybar * value).sum().item<double>();
  const auto projected = [&b](const torch::Tensor& g) { return g - (g * b).sum() * b; };
  const auto gradient = torch::matmul(ybar * slope, inputs);
  result.residual = (projected(gradient).norm() / gradient.norm().clamp_min(1e-300)).item<double>();
  result.kink_residual = result.residual;
  if (!has_kinks(ncf.options().activation())) return result;
  // g is positively homogeneous of degree 1 with slopes g(1) on z > 0 and −g(−1) on z < 0;
  // at a kink its Clarke derivative is any slope between them.
  const auto ends = composed_activation(torch::tensor({1.0, -1.0}, torch::kFloat64), activation,
                                        compositions, chain_signs)
                        .first;
  const double right = ends[0].item<double>();
  const double left = -ends[1].item<double>();
  const auto at_kink = z.abs() <= kink_tol * inputs.norm(2, 1);
  result.kinks = at_kink.sum().item<int64_t>();
  if (result.kinks == 0) return result;
  const auto smooth_part = torch::matmul(ybar * slope * (~at_kink), inputs);
  const auto columns = inputs.index({at_kink}) * ybar.index({at_kink}).unsqueeze(1);  // [F, d]
  std::vector<torch::Tensor> projected_columns;
  for (int64_t k = 0; k < columns.size(0); ++k) projected_columns.push_back(projected(columns[k]));
  const auto matrix = torch::stack(projected_columns, 1);  // [d, F]
  const auto slopes = bounded_least_squares(matrix, -projected(smooth_part), std::min(left, right),
                                            std::max(left, right));
  const auto best = smooth_part + torch::matmul(slopes, columns);
  result.kink_residual = (projected(best).norm() / best.norm().clamp_min(1e-300)).item<double>();
  return result;
}

torch::Tensor rank_one_point(const Ncf& ncf, const torch::Tensor& b_in,
                             const std::vector<torch::Tensor>& hidden_vectors,
                             const std::vector<int>& chain_signs) {
  const auto options = torch::TensorOptions().dtype(torch::kFloat64);
  auto b = b_in.to(torch::kCPU, torch::kFloat64).flatten();
  b = b / b.norm();
  const auto& shapes = ncf.layer_shapes();
  const auto hidden = static_cast<size_t>(ncf.hidden_layers());
  TORCH_CHECK(b.size(0) == shapes[0][1], "rank_one_point – b must have ", shapes[0][1],
              " entries – got ", b.size(0));
  const bool single_layer = ncf.options().kind() == ModelKind::single_layer;
  TORCH_CHECK(chain_signs.empty() || chain_signs.size() == (single_layer ? 0 : hidden),
              "rank_one_point – need one chain sign per layer after the first – got ",
              chain_signs.size());
  TORCH_CHECK(hidden_vectors.empty() || hidden_vectors.size() == hidden,
              "rank_one_point – need one hidden vector per hidden layer (", hidden, ") – got ",
              hidden_vectors.size());
  std::vector<torch::Tensor> a;
  for (size_t l = 0; l < hidden; ++l) {
    torch::Tensor vector;
    if (hidden_vectors.empty()) {
      vector = torch::zeros({shapes[l][0]}, options);
      vector[0] = 1.0;
    } else {
      vector = hidden_vectors[l].to(torch::kCPU, torch::kFloat64).flatten();
      TORCH_CHECK(vector.size(0) == shapes[l][0], "rank_one_point – hidden vector ", l + 1,
                  " must have ", shapes[l][0], " entries – got ", vector.size(0));
      vector = vector / vector.norm();
    }
    a.push_back(vector);
  }
  const double total = static_cast<double>(ncf.total_degree());
  std::vector<torch::Tensor> layers;
  for (size_t l = 0; l < shapes.size(); ++l) {
    const double sign =
        l == 0 || chain_signs.empty() ? 1.0 : static_cast<double>(chain_signs[l - 1]);
    const double scale = sign * std::sqrt(ncf.degrees()[l] / total);
    const auto left = l < hidden ? a[l] : torch::ones({1}, options);  // W_K's single row
    const auto right = l == 0 ? b : a[l - 1];
    layers.push_back((scale * torch::outer(left, right)).flatten());
  }
  return torch::cat(layers).to(ncf.inputs().options());
}

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
  std::vector<torch::Tensor> hidden_vectors;  // leading left singular vectors, hidden layers
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
      const auto a = left.select(1, 0);
      result.hidden.push_back(
          describe_hidden_vector(a, static_cast<int64_t>(l) + 1, options.support_tol()));
      hidden_vectors.push_back(a.sum().item<double>() < 0 ? -a : a);  // oriented non-negative
    }
    if (l == 0) {
      first_left = left.select(1, 0);
      first_right = right_t[0];
    }
    result.layers.push_back(std::move(layer));
  }

  // Orient b so that the first hidden vector is mostly non-negative: then each hidden unit
  // computes σ(c·bᵀx) with c ≥ 0, and b is the input direction of the single-neuron problem.
  const bool flip = first_left.sum().item<double>() < 0;
  const auto b = flip ? -first_right : first_right;
  for (int64_t k = 0; k < b.size(0); ++k) result.input_direction.push_back(b[k].item<double>());
  // The signs that chain û's hidden vectors.
  if (ncf.options().kind() != ModelKind::single_layer) {
    for (size_t l = 1; l < layers.size(); ++l) {
      const auto left = l < hidden ? hidden_vectors[l] : torch::ones({1}, unit.options());
      const double link =
          torch::dot(left, torch::mv(layers[l][0], hidden_vectors[l - 1])).item<double>();
      result.chain_signs.push_back(link < 0 ? -1 : 1);
    }
  }
  result.single_neuron = single_neuron_kkt(ncf, b, options.kink_tol(), result.chain_signs);
  result.single_neuron_residual = result.single_neuron.residual;

  // The theorem's construction from b, those hidden vectors and signs.
  const auto constructed =
      rank_one_point(ncf, b, hidden_vectors, result.chain_signs).to(unit.options());
  result.construction_distance = (constructed - unit[0]).norm().item<double>();
  const auto row = constructed.to(ncf.inputs().options()).unsqueeze(0);
  result.construction_residual =
      has_kinks(ncf.options().activation())
          ? ncf.kink_residual(row, options.kink_tol()).residual.to(torch::kCPU).item<double>()
          : ncf.smooth_residual(row).item<double>();
  result.single_neuron_construction = result.rank_one &&
                                      result.construction_distance <= options.rank_one_tol() &&
                                      result.single_neuron.kink_residual <= options.rank_one_tol();
  return result;
}

}  // namespace ncflab
