// The Neural Correlation Function N(u) = ȳᵀH(X; u) (SPEC §1) of a feed-forward or
// single-layer model for an ensemble of weight vectors u [S, P], its exact gradient, and
// the smooth and kink-aware KKT residuals of the constrained problem max N(u) s.t. ‖u‖ = 1.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "ncflab/model/feedforward.h"

namespace ncflab {

struct NcfEvaluation {
  torch::Tensor value;     ///< N(u), [S]
  torch::Tensor gradient;  ///< ∇N(u), [S, P]
};

/// Kink-aware (Clarke) KKT residual of each member.
struct KinkResidual {
  torch::Tensor residual;  ///< [S]: smallest projected-gradient norm over allowed slopes, / ‖∇N‖
  torch::Tensor kinks;     ///< [S] int64: preactivations treated as kinks
};

class Ncf {
 public:
  /// The architecture comes from `options` (kind, widths, activation); `inputs` [n, d] and
  /// `ybar` [n] fix the data. Directions u live on the inputs' device and dtype.
  Ncf(FeedForwardOptions options, torch::Tensor inputs, torch::Tensor ybar);

  /// N(u) per member: u [S, P] → [S].
  torch::Tensor value(const torch::Tensor& u) const;
  /// N(u) and ∇N(u) (analytic backward pass, checked against autograd in the tests).
  NcfEvaluation evaluate(const torch::Tensor& u) const;

  /// ‖∇N(û) − ⟨∇N(û), û⟩û‖ / ‖∇N(û)‖ for û = u/‖u‖: 0 exactly at a smooth KKT point. [S]
  torch::Tensor smooth_residual(const torch::Tensor& u) const;

  /// For p = 1 nets: every hidden preactivation with |z| ≤ tolerance·‖row of W_l‖·‖a_{l−1}‖
  /// may take any slope in [min(α,1), max(α,1)]; returns the smallest projected-gradient
  /// norm over those slopes (relative to ‖∇N‖), a bounded least-squares problem solved
  /// exactly by an active-set method. The gradient is affine in the slopes of one layer,
  /// so the minimum is exact when kinks sit in one layer; with kinks in several layers
  /// the layers are solved in turn until the residual stops shrinking (block coordinate
  /// descent on a multilinear problem: an upper bound on the minimum).
  /// Each kinked pair gets its own slope: where pairs are coupled (dependent inputs of one
  /// unit, kinks in successive layers) that set is larger than the Clarke set, so a zero
  /// certifies stationarity for this relaxation (README "What the kink-aware residual
  /// certifies"). For p ≥ 2 (no kinks) it equals the smooth residual.
  KinkResidual kink_residual(const torch::Tensor& u, double tolerance) const;

  /// Minimal-norm projected gradient over the allowed slopes (the steepest Clarke ascent
  /// direction on the sphere) for each member, [S, P], and the kink counts. Used by the
  /// KKT search to step along ridges instead of zig-zagging across them.
  std::pair<torch::Tensor, torch::Tensor> clarke_ascent_direction(const torch::Tensor& u,
                                                                  double tolerance) const;

  /// Preactivations of member û [P] that count as kinks: per hidden layer a [F_l, 2]
  /// tensor of (unit j, sample i) with |z_ji| ≤ tolerance·‖W_l[j,:]‖·‖a_{l−1}[:,i]‖, and
  /// every z_ji of a sample whose whole input column comes from kinks (or removed units) of
  /// the layer before. Units with an all-zero row (removed) have none. Empty for p ≥ 2 and
  /// for α = 1 (no kink).
  std::vector<torch::Tensor> kinks(const torch::Tensor& unit_row, double tolerance) const;

  /// Moves û [P] onto the kink manifold {z_ji = 0 for the given kinks}: each row W_l[j,:]
  /// loses its components along the a_{l−1}[:,i] of its kinks (layer by layer, so later
  /// activations see the projected earlier layers). Returns the projected row, renormalised.
  torch::Tensor project_onto_kinks(const torch::Tensor& unit_row,
                                   const std::vector<torch::Tensor>& kinks) const;

  int64_t parameters() const { return parameters_; }
  const std::vector<int64_t>& degrees() const { return degrees_; }
  int64_t total_degree() const { return total_degree_; }
  const std::vector<std::vector<int64_t>>& layer_shapes() const { return shapes_; }
  /// Layers followed by σ (their units can be permuted; p = 1: their kinks).
  int64_t hidden_layers() const { return static_cast<int64_t>(options_.widths().size()); }
  const FeedForwardOptions& options() const { return options_; }
  const torch::Tensor& inputs() const { return inputs_; }
  const torch::Tensor& ybar() const { return ybar_; }
  std::vector<torch::Tensor> layers(const torch::Tensor& u) const {
    return split_layers(u, shapes_);
  }

 private:
  struct ClarkeChoice {
    torch::Tensor gradient;  ///< ∇N with the chosen slopes, [P]
    torch::Tensor tangent;   ///< its projection orthogonal to û, [P]
    int64_t kinks = 0;
  };
  // One member (û [P]) with the kink slopes chosen to minimise the tangent's norm.
  ClarkeChoice best_clarke_gradient(const torch::Tensor& unit_row, double tolerance) const;

  FeedForwardOptions options_;
  torch::Tensor inputs_;
  torch::Tensor ybar_;
  std::vector<std::vector<int64_t>> shapes_;
  std::vector<int64_t> degrees_;
  int64_t total_degree_ = 0;
  int64_t parameters_ = 0;
};

/// Minimises ‖M t − b‖ over the box lower ≤ t ≤ upper (bounded-variable least squares,
/// Lawson–Hanson active set). M [m, F], b [m], float64. Returns t [F].
torch::Tensor bounded_least_squares(const torch::Tensor& matrix, const torch::Tensor& target,
                                    double lower, double upper);

/// Rows scaled to unit norm: u/‖u‖ for u [S, P].
torch::Tensor unit_rows(const torch::Tensor& u);

}  // namespace ncflab
