// KKT points of the constrained NCF (max N(u) s.t. ‖u‖ = 1, SPEC §1), found by
// projected gradient ascent on the sphere from many random starts at once.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "ncflab/ncf/ncf.h"

namespace ncflab {

struct KktSearchOptions {
  /// Random unit-norm starts, run together as one batched ensemble.
  TORCH_ARG(int64_t, restarts) = 32;
  /// Residual at which a point counts as KKT: the smooth residual for p ≥ 2, the
  /// kink-aware one for p = 1.
  TORCH_ARG(double, tol) = 1e-10;
  /// Ascent iterations per start (at most).
  TORCH_ARG(int64_t, max_iterations) = 20000;
  /// Relative preactivation size |z| ≤ kink_tol·‖row‖·‖input‖ treated as a kink (p = 1).
  TORCH_ARG(double, kink_tol) = 1e-6;
  /// Two points are one when, after matching hidden units, they differ by less than this.
  TORCH_ARG(double, duplicate_tol) = 1e-6;
  /// Seed of the starts (stream `kkt`).
  TORCH_ARG(uint64_t, seed) = 0;
};

struct KktPoint {
  torch::Tensor direction;   ///< û [P], float64 on CPU, ‖û‖ = 1
  double ncf = 0;            ///< N(û)
  double residual = 0;       ///< smooth KKT residual
  double kink_residual = 0;  ///< kink-aware residual (= residual for p ≥ 2)
  int64_t kinks = 0;         ///< preactivations at a kink (p = 1)
  int64_t iterations = 0;    ///< ascent iterations of the first start that found it
  int64_t found_by = 1;      ///< starts that ended at this point (up to hidden-unit permutations)
};

struct KktSearchResult {
  /// Converged points with N ≥ 0, duplicates merged, highest N first.
  std::vector<KktPoint> points;
  int64_t restarts = 0;
  int64_t converged = 0;                 ///< starts whose residual reached tol
  int64_t negative = 0;                  ///< converged starts that ended at N < 0 (dropped)
  int64_t unconverged = 0;               ///< starts that ran out of iterations
  double best_unconverged_residual = 0;  ///< smallest residual among those
};

struct KktProgress {
  int64_t iteration;
  int64_t active;  ///< starts still iterating
  double best_ncf;
};

/// Runs the search. Armijo backtracking per start (step ×1.5 after success, ×0.3 after
/// failure) converges at smooth points. For p = 1 a start stops its smooth ascent once N
/// stops rising (it sits at a kink, where that ascent stalls) or after half the iterations;
/// unless it is already KKT by the kink-aware residual, kink_newton (kink_newton.h) then
/// holds its kinks at zero, solves on that manifold by Newton's method and adds or releases
/// kinks until the Clarke slopes fit.
KktSearchResult search_kkt_points(const Ncf& ncf, const KktSearchOptions& options,
                                  const std::function<void(const KktProgress&)>& progress = {});

/// True when two points (flat [P]) are equal after permuting hidden units, to `tol`.
bool same_up_to_permutation(const Ncf& ncf, const torch::Tensor& a, const torch::Tensor& b,
                            double tol);

}  // namespace ncflab
