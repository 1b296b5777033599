// Greedy layer-by-layer matching of hidden units: good enough to compare a direction with
// a KKT point whose units are a permutation of its own (exact when they are).
#include "ncflab/ncf/unit_matching.h"

#include <limits>

#include "ncflab/model/feedforward.h"

namespace ncflab {

torch::Tensor align_hidden_units(const torch::Tensor& reference, const torch::Tensor& point,
                                 const FeedForwardOptions& options) {
  const auto shapes = layer_shapes(options);
  const auto ref_layers = split_layers(reference.to(torch::kCPU, torch::kFloat64), shapes);
  // Every layer but the last has units; a single-layer model's fixed output row of ones
  // comes along so the loop below permutes its (identical) columns like any other layer's.
  const auto layers =
      network_layers(split_layers(point.to(torch::kCPU, torch::kFloat64).clone(), shapes), options);
  std::vector<torch::Tensor> aligned;
  for (const auto& layer : layers) aligned.push_back(layer[0].clone());
  for (size_t l = 0; l + 1 < aligned.size(); ++l) {
    const auto& mine = ref_layers[l][0];
    const int64_t units = mine.size(0);
    // Cosine of incoming rows; a zero row (a dead unit) matches nothing better than 0.
    const auto unit_a = mine / mine.norm(2, 1, true).clamp_min(1e-300);
    const auto unit_b = aligned[l] / aligned[l].norm(2, 1, true).clamp_min(1e-300);
    const auto similarity = torch::matmul(unit_a, unit_b.t()).contiguous();
    const auto at = similarity.accessor<double, 2>();
    std::vector<int64_t> order(static_cast<size_t>(units), -1);
    std::vector<bool> used(static_cast<size_t>(units), false);
    for (int64_t round = 0; round < units; ++round) {
      double best = -std::numeric_limits<double>::infinity();
      int64_t best_j = -1;
      int64_t best_k = -1;
      for (int64_t j = 0; j < units; ++j) {
        if (order[static_cast<size_t>(j)] >= 0) continue;
        for (int64_t k = 0; k < units; ++k) {
          if (!used[static_cast<size_t>(k)] && at[j][k] > best) {
            best = at[j][k];
            best_j = j;
            best_k = k;
          }
        }
      }
      order[static_cast<size_t>(best_j)] = best_k;
      used[static_cast<size_t>(best_k)] = true;
    }
    // Unit j of the result is unit order[j] of the point: permute this layer's rows and
    // the next layer's columns alike, so H is unchanged.
    const auto index = torch::tensor(order, torch::kLong);
    aligned[l] = aligned[l].index_select(0, index);
    aligned[l + 1] = aligned[l + 1].index_select(1, index);
  }
  std::vector<torch::Tensor> batched;
  for (size_t l = 0; l < shapes.size(); ++l) batched.push_back(aligned[l].unsqueeze(0));
  return join_layers(batched)[0];
}

}  // namespace ncflab
