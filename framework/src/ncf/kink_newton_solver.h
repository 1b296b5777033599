// The active-set Newton solver of kink_newton.h (internal): the pattern of slopes that
// makes N linear in each layer, and the state of the walk on the kink manifold.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "ncflab/ncf/kink_newton.h"

namespace ncflab::kink_detail {

// Relative rounding of N: below it, function values cannot tell progress apart.
constexpr double kValueRounding = 64 * std::numeric_limits<double>::epsilon();
// A held preactivation is on its kink when |z| ≤ this·‖row‖·‖input‖ (see sample_scales).
constexpr double kOnKink = 1e-14;
// A free preactivation this close to zero (same scale) has no side yet: it is not tested
// for sign changes (a just-released kink, or one fed by a just-released one).
constexpr double kNoSide = 1e-12;
// A unit whose ‖incoming‖·‖outgoing‖ is below this (‖û‖ = 1) carries nothing: it is removed.
constexpr double kDeadCarry = 1e-12;
// Relative size of the one-sided probes that measure how N leaves a held kink.
constexpr double kProbe = 1e-7;

/// Least-squares solution of matrix·x ≈ target (minimum norm, gelsd).
torch::Tensor least_squares(const torch::Tensor& matrix, const torch::Tensor& target);

// Every hidden preactivation z_h[j, i] has one flat index k (layer by layer, unit-major);
// the held set, the slopes and the signs live on that index ([Z] tensors).
struct PatternPass {
  std::vector<torch::Tensor> a;  // [B, k_h, n], a = s ⊙ z with the pattern's slopes s
  torch::Tensor flat_z;          // [B, Z]
};

/// The walk of kink_newton() from one start: the pattern (held kinks, signs, slopes,
/// removed units) and the Newton iterations on the manifold it defines.
class KinkNewton {
 public:
  KinkNewton(const Ncf& ncf, const KinkNewtonOptions& options)
      : ncf_(ncf), options_(options), alpha_(ncf.options().activation().alpha()) {
    n_ = ncf.inputs().size(0);
    const auto& shapes = ncf.layer_shapes();
    for (size_t h = 0; h < static_cast<size_t>(ncf.hidden_layers()); ++h) {
      offsets_.push_back(total_);
      widths_.push_back(shapes[h][0]);
      total_ += shapes[h][0] * n_;
    }
    // Any slope in the Clarke interval gives the same manifold and the same N on it.
    held_slope_ = 0.5 * (alpha_ + 1.0);
    options_t_ = ncf.inputs().options();
  }

  KinkNewtonResult run(const torch::Tensor& start);

 private:
  /// Where the walk stands at u: the gradient, the held kinks' constraints and multipliers,
  /// and the tangent space of the kink manifold.
  struct Tangent {
    torch::Tensor u1;  // u [1, P]
    PatternPass pass;
    torch::Tensor signals;           // ∂N/∂a_k, [Z]
    double gradient_norm = 0;        // ‖∇N‖ (+1e-300)
    torch::Tensor held;              // flat indices of the held kinks, [m]
    torch::Tensor live;              // coordinates of live units, [P']
    torch::Tensor rows;              // ∇z_k of the held kinks, [m, P]
    torch::Tensor basis;             // tangent space on the live coordinates, [P', P' − r]
    torch::Tensor reduced_gradient;  // ∇N in that basis
    double residual = 0;             // ‖reduced gradient‖/‖∇N‖
    torch::Tensor mu;                // multipliers of the held kinks, [m]
    double lambda = 0;               // multiplier of ‖u‖ = 1
  };
  /// Newton's model in the eigenbasis of the reduced Hessian, every curvature negative.
  struct AscentModel {
    torch::Tensor vectors;
    std::vector<double> magnitudes;  // |e_i|, floored
    std::vector<double> c;           // reduced gradient in the eigenbasis
  };

  /// The start on the sphere with its near-kinks held and retracted onto them.
  torch::Tensor start_on_manifold(const torch::Tensor& start);
  /// The tangent at u; none when ∇N is not finite or u is an isolated point.
  std::optional<Tangent> tangent_at(const torch::Tensor& u) const;
  /// Releases the held kink whose release gains most, once the problem on the manifold is
  /// (nearly) solved; true when one was released.
  bool release_a_kink(const torch::Tensor& u, const Tangent& tangent);
  /// The exact Hessian of the Lagrangian reduced to the tangent space; none when it is not
  /// finite or no decomposition converges.
  std::optional<AscentModel> ascent_model(const Tangent& tangent) const;
  /// Trust-region steps until one ascends (u, value and radius updated); false when none
  /// does at float64 resolution.
  bool trust_region_ascent(torch::Tensor& u, double& value, double& radius, const Tangent& tangent,
                           const AscentModel& model);
  torch::Tensor layer_view(const torch::Tensor& flat, size_t h) const {
    return flat.narrow(-1, offsets_[h], widths_[h] * n_).unflatten(-1, {widths_[h], n_});
  }

  // Forward pass for members u [B, P] with fixed slopes [Z] (default: the pattern's): N is
  // then linear in each layer.
  PatternPass forward(const torch::Tensor& u) const { return forward(u, slopes_); }
  PatternPass forward(const torch::Tensor& u, const torch::Tensor& slopes) const;

  // ∂/∂u of Σ_i c_i·H(x_i) + Σ_k e_k·z_k with the pattern's slopes: c = ȳ when `with_output`,
  // e = `extra` ([B, Z] or [1, Z], optional). Returns [B, P]; `signals` gets ∂/∂a_k, [B, Z].
  torch::Tensor backward(const torch::Tensor& u, const PatternPass& pass, bool with_output,
                         const torch::Tensor& extra, torch::Tensor* signals = nullptr) const {
    return backward(u, pass, slopes_, with_output, extra, signals);
  }
  torch::Tensor backward(const torch::Tensor& u, const PatternPass& pass,
                         const torch::Tensor& slopes, bool with_output, const torch::Tensor& extra,
                         torch::Tensor* signals = nullptr) const;

  // Rows ∇z_k [m, P] of the given flat indices at u [1, P].
  torch::Tensor jacobian(const torch::Tensor& u, const PatternPass& pass,
                         const torch::Tensor& index) const {
    return jacobian(u, pass, slopes_, index);
  }
  torch::Tensor jacobian(const torch::Tensor& u, const PatternPass& pass,
                         const torch::Tensor& slopes, const torch::Tensor& index) const;

  // ‖W_h[j, :]‖ times the rms over samples of ‖a_{h−1}[:, i]‖, per flat index [Z]: the
  // scale of z_h[j, ·] (robust where one sample's input column vanishes).
  torch::Tensor typical_scales(const torch::Tensor& u, const PatternPass& pass) const;

  // ‖W_h[j, :]‖·‖a_{h−1}[:, i]‖ per flat index [Z]: the scale of Ncf::kinks, against which
  // held preactivations are driven to zero (so the certificate sees them as kinks).
  torch::Tensor sample_scales(const torch::Tensor& u, const PatternPass& pass) const;

  // The true forward pass of u [P]: preactivations [Z] and activations per hidden layer.
  std::pair<torch::Tensor, std::vector<torch::Tensor>> true_pass(const torch::Tensor& u) const;

  // A sample's column of layer h vanishes when all its preactivations there are held, dead,
  // themselves shadowed, or (α = 0) negative; then every preactivation of layer h + 1 at
  // that sample is zero on the manifold ("shadowed"): not a constraint of its own, and
  // without a side.
  void update_shadow();

  // Signs of the free preactivations follow the point u [P]; those too close to zero to
  // have a side (kNoSide) keep theirs. Held and shadowed ones take the midpoint slope.
  void follow_signs(const torch::Tensor& u);

  // Free preactivations sitting on their kink without a side (|z| ≤ kNoSide) that are not
  // about to leave it (`exempt_`: a just-released kink and what it feeds) are held: a step
  // would otherwise cross them unseen. Returns true when the held set grew.
  bool hold_sideless(const torch::Tensor& u);

  // On releasing kink k = (h, m, i) to `side`: the preactivations it feeds at sample i that
  // sit at zero (shadowed so far) take the signs they get when a_k leaves zero that way, and
  // stay free for the next step.
  void prepare_release(const torch::Tensor& u, int64_t k, double side);

  torch::Tensor held_index() const { return held_mask_.nonzero().flatten(); }

  // Moves u [P] back onto {z_k = 0, k held} by Gauss–Newton (minimum-norm corrections),
  // then onto the sphere (z is homogeneous, so scaling keeps z_k = 0). Each iteration takes
  // the free slopes from the true signs at the current point, so the held z that reach zero
  // are the true ones even where the correction moves a near-zero free one across its kink.
  torch::Tensor retract(torch::Tensor u, const torch::Tensor& held) const;

  // For each held kink k = (h, m, i): the first-order change of N per unit of z_k when z_k
  // leaves the kink upward (a_k = z_k) and downward (a_k = α·z_k), measured by propagating
  // sample i's column with a_k = ±ε through the true activations — exact for small ε, also
  // where later layers' preactivations at that sample are shadowed and pick their own sides.
  std::pair<torch::Tensor, torch::Tensor> one_sided_rates(const torch::Tensor& u,
                                                          const torch::Tensor& held) const;

  // Removes units that carry nothing (and, for α = 0, units with no positive preactivation:
  // their incoming and outgoing gradients vanish, so both must be zero at a KKT point with
  // λ = L·N > 0). Returns true when a unit was removed; u stays on the sphere.
  bool remove_dead_units(torch::Tensor& u);

  const Ncf& ncf_;
  KinkNewtonOptions options_;
  double alpha_;
  double held_slope_ = 0.5;
  int64_t n_ = 0;
  int64_t total_ = 0;
  std::vector<int64_t> offsets_;
  std::vector<int64_t> widths_;
  torch::TensorOptions options_t_;
  torch::Tensor slopes_;         // [Z] slope per preactivation
  torch::Tensor signs_;          // [Z] ±1: the side of its kink each free preactivation is on
  torch::Tensor held_mask_;      // [Z] bool: held at z = 0
  torch::Tensor shadow_mask_;    // [Z] bool: zero because its whole input column is
  torch::Tensor dead_mask_;      // [Z] bool: preactivations of removed units
  torch::Tensor frozen_;         // [P] bool: weights of removed units
  torch::Tensor release_count_;  // [Z] int64: how often each kink was released
  torch::Tensor exempt_;         // [Z] bool: leaving the kink in the coming step
  std::vector<std::vector<bool>> dead_units_;
};

}  // namespace ncflab::kink_detail
