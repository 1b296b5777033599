// Active-set Newton method for KKT points of the constrained NCF of Leaky ReLU (p = 1)
// nets, whose maxima sit on kinks where plain ascent on the sphere stalls (SPEC §1).
#pragma once

#include <torch/torch.h>

#include <cstdint>

#include "ncflab/ncf/ncf.h"

namespace ncflab {

struct KinkNewtonOptions {
  /// Target of the kink-aware residual: a kink is released when doing so gains more than
  /// tol/10 (relative to ‖∇N‖), and the walk stops when the gradient along the kink manifold
  /// is below tol/10.
  TORCH_ARG(double, tol) = 1e-10;
  /// Preactivations of the start with |z| ≤ kink_tol·‖row‖·‖input‖ are held at their kink
  /// from the first iteration on; others join when a step reaches them.
  TORCH_ARG(double, kink_tol) = 1e-6;
  /// Newton iterations (at most); each adds a kink, releases one, or takes a step.
  TORCH_ARG(int64_t, max_iterations) = 150;
};

struct KinkNewtonResult {
  torch::Tensor direction;       ///< û [P], ‖û‖ = 1, same dtype and device as the start
  int64_t iterations = 0;        ///< Newton iterations taken
  int64_t held_kinks = 0;        ///< preactivations held at zero at the end
  int64_t dead_units = 0;        ///< hidden units removed: incoming and outgoing weights zero
  double manifold_residual = 0;  ///< ‖gradient along the kink manifold‖ / ‖∇N‖ at the end
};

/// Refines a unit direction `start` [P] of a p = 1 net to a KKT point of max N s.t. ‖u‖ = 1.
///
/// Once the sign of every preactivation is fixed, N is a polynomial (linear in each layer),
/// so on the manifold {z_k = 0 for the held kinks k, ‖u‖ = 1} Newton's method converges in a
/// few steps. The Hessian of the Lagrangian is exact: ∇N changes affinely when one weight
/// moves, so P batched gradient evaluations give it column by column. Its reduced form is
/// made negative definite (eigenvalues e → −|e|), so every step ascends. The multipliers μ_k
/// of the held kinks are the Clarke slopes in disguise (s_k = b − μ_k/δ_k, δ_k = ∂N/∂a_k):
/// a held kink is released toward the side on which N rises to first order (for a concave
/// kink: s_k outside [min(α,1), max(α,1)]), and a step stops at the first preactivation
/// that changes sign, which then joins the held set — a standard active-set method.
/// The release gains come from one-sided probes of N at the kink's sample, so they also hold
/// where a sample's whole column of a layer is held at zero and the next layer's
/// preactivations there ("shadowed", zero on the manifold) pick their sides only once the
/// kink is left. Hidden units that carry nothing (‖incoming‖·‖outgoing‖ ≈ 0, or for α = 0 no
/// positive preactivation) are removed as a whole: both weight sets are set to zero and kept
/// there, the only KKT values for them when N > 0 (a single-layer model's outgoing row is
/// fixed to ones: only the incoming weights go; the final certificate judges the point).
/// Steps are trust-region steps in the eigenbasis of the reduced Hessian. Runs on the device
/// and dtype of `ncf`; pass a CPU float64 Ncf for speed and accuracy. Not for p ≥ 2 or
/// α = 1 (no kinks).
KinkNewtonResult kink_newton(const Ncf& ncf, const torch::Tensor& start,
                             const KinkNewtonOptions& options = {});

}  // namespace ncflab
