// Structure of a feed-forward direction (SPEC §1, rank-one KKT points): per-layer
// balance and singular values, the hidden singular vectors' signs, support and
// magnitudes, and the input direction's single-neuron KKT residual. Measured, never assumed.
// For a single-layer model H = Σ_j σ(w_jᵀx) the same numbers read: W1 rank one = every live
// unit points along ±b; its hidden vector holds the units' signed scales; the balance
// ‖W1‖² = q_1/L = 1 holds trivially; b solves the single-neuron problem with g = σ.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "ncflab/ncf/ncf.h"

namespace ncflab {

struct StructureOptions {
  /// A layer counts as rank one when σ₂/σ₁ is below this.
  TORCH_ARG(double, rank_one_tol) = 1e-4;
  /// Entries of a singular vector smaller than this fraction of its largest are zero.
  TORCH_ARG(double, support_tol) = 1e-3;
};

struct LayerStructure {
  double norm2 = 0;         ///< ‖W_l‖_F²
  double target_norm2 = 0;  ///< q_l / L, the balance at a KKT point
  double sv_ratio = 0;      ///< σ₂/σ₁ (0 for a vector layer)
  std::vector<double> singular_values;
};

/// The leading left singular vector of W_l for a hidden layer l (one entry per unit): l < K
/// for a feed-forward net, W1 of a single-layer model.
struct HiddenVectorStructure {
  int64_t layer = 0;            ///< l = 1 … K−1
  double sign_fraction = 0;     ///< share of non-zero entries with the majority sign
  int64_t support = 0;          ///< non-zero entries
  int64_t units = 0;            ///< k_l
  double magnitude_spread = 0;  ///< (max − min)/max of the non-zero magnitudes
};

struct DirectionStructure {
  std::vector<LayerStructure> layers;
  std::vector<HiddenVectorStructure> hidden;
  double balance_error = 0;             ///< max_l |‖W_l‖² − q_l/L|
  bool rank_one = false;                ///< every layer's σ₂/σ₁ < rank_one_tol
  std::vector<double> input_direction;  ///< b: leading right singular vector of W_1, oriented
                                        ///< so the first hidden vector is mostly non-negative
  double single_neuron_residual = 0;    ///< smooth KKT residual of b for max Σ ȳ_i g(bᵀx_i),
                                        ///< g = σ composed once per hidden layer (K−1 times;
                                        ///< once for a single-layer model)
};

/// Measures the structure of one direction û [P] (normalised here).
DirectionStructure analyze_structure(const Ncf& ncf, const torch::Tensor& direction,
                                     const StructureOptions& options = {});

}  // namespace ncflab
