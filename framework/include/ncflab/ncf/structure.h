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
  /// p = 1: preactivations within this fraction of ‖row‖·‖input‖ of zero count as kinks in
  /// the kink-aware residuals (of b's single-neuron problem and of the constructed point).
  TORCH_ARG(double, kink_tol) = 1e-6;
};

/// b's single-neuron problem max_{‖b‖=1} N_b(b) = Σ ȳ_i g(bᵀx_i), g = σ composed once per
/// hidden layer (SPEC §1): its value and KKT residuals at a unit b.
///
/// A rank-one point's layers chain as W_l = ε_l·s_l·a_l·a_{l−1}ᵀ with non-negative hidden
/// vectors a_l and a sign ε_l per layer l ≥ 2 (ε_1 is b's orientation). SPEC §1's
/// g = σ∘…∘σ is the chain with every ε_l = +1; a KKT search also finds chains with a negative
/// link (e.g. W_K < 0 with N_b < 0), whose single-neuron function is
/// g_ε(z) = ε_K·σ(ε_{K−1}·σ(⋯ε_2·σ(z))). `chain_signs` holds ε_2 … ε_K (empty: all +1).
struct SingleNeuronKkt {
  double value = 0;     ///< N_b(b)
  double residual = 0;  ///< smooth KKT residual ‖P_b⊥∇N_b‖/‖∇N_b‖ (σ'(0) = 0 for p = 1)
  double kink_residual = 0;  ///< p = 1: the smallest such residual when every bᵀx_i within
                             ///< kink_tol·‖x_i‖ of zero takes any slope of g at its kink;
                             ///< equals `residual` for p ≥ 2
  int64_t kinks = 0;         ///< samples at a kink of g
};

/// N_b, ∇N_b and the residuals of the single-neuron problem of `ncf` at b [d] (normalised).
SingleNeuronKkt single_neuron_kkt(const Ncf& ncf, const torch::Tensor& b, double kink_tol,
                                  const std::vector<int>& chain_signs = {});

/// The rank-one point the theorem builds from an input direction b [d] (SPEC §1):
/// W_1 = s_1·a_1·bᵀ, W_l = s_l·a_l·a_{l−1}ᵀ, W_K = s_K·a_{K−1}ᵀ with balanced scales
/// s_l = √(q_l/L) and unit hidden vectors a_l (default: the first unit alone, e_1). Then
/// N(u) = Π s_l^(q_l)·Σ ȳ_i g(bᵀx_i) for non-negative a_l with one magnitude (p > 1) or any
/// non-negative a_l (p = 1), and u is a KKT point of the constrained NCF exactly when b is one
/// of the single-neuron problem. A single-layer model's u is W_1 = a_1·bᵀ. Returns u [P] in
/// the Ncf's dtype. With `chain_signs` (ε_2 … ε_K), W_l carries ε_l and g is g_ε.
torch::Tensor rank_one_point(const Ncf& ncf, const torch::Tensor& b,
                             const std::vector<torch::Tensor>& hidden_vectors = {},
                             const std::vector<int>& chain_signs = {});

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
  std::vector<int> chain_signs;   ///< ε_2 … ε_K: sign of a_lᵀ·W_l·a_{l−1} (see above)
  SingleNeuronKkt single_neuron;  ///< b's problem with g_ε, kink-aware for p = 1
  /// ‖û − u_b‖ with u_b = rank_one_point(b, the hidden vectors of û oriented non-negative,
  /// chain_signs):
  /// 0 when û is exactly the theorem's construction from its own b.
  double construction_distance = 0;
  /// KKT residual of u_b (kink-aware for p = 1): whether the construction is a KKT point.
  double construction_residual = 0;
  /// rank_one, construction_distance ≤ rank_one_tol and b's (kink-aware) single-neuron
  /// residual ≤ rank_one_tol: û is the construction of a single-neuron KKT point.
  bool single_neuron_construction = false;
};

/// Measures the structure of one direction û [P] (normalised here).
DirectionStructure analyze_structure(const Ncf& ncf, const torch::Tensor& direction,
                                     const StructureOptions& options = {});

}  // namespace ncflab
