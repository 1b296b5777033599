// The active-set Newton method of kink_newton.h: a forward and backward pass with every
// slope fixed (N is then linear in each layer), the exact Hessian of the Lagrangian on the
// kink manifold, a trust-region step, and the rules that add and release kinks.
#include "ncflab/kink_newton.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace ncflab {
namespace {

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

torch::Tensor least_squares(const torch::Tensor& matrix, const torch::Tensor& target) {
  return std::get<0>(torch::linalg_lstsq(matrix, target.unsqueeze(1), c10::nullopt,
                                         c10::string_view("gelsd")))
      .squeeze(1);
}

// Every hidden preactivation z_h[j, i] has one flat index k (layer by layer, unit-major);
// the held set, the slopes and the signs live on that index ([Z] tensors).
struct PatternPass {
  std::vector<torch::Tensor> a;  // [B, k_h, n], a = s ⊙ z with the pattern's slopes s
  torch::Tensor flat_z;          // [B, Z]
};

// Trust-region step in the eigenbasis of the (negated, made positive) reduced Hessian:
// p_i = c_i / (|e_i| + ν) with ν ≥ 0 the smallest shift giving ‖p‖ ≤ radius.
std::vector<double> trust_region_step(const std::vector<double>& c, const std::vector<double>& magnitude,
                                      double radius) {
  auto norm_at = [&](double shift) {
    double sum = 0;
    for (size_t i = 0; i < c.size(); ++i) sum += std::pow(c[i] / (magnitude[i] + shift), 2);
    return std::sqrt(sum);
  };
  double shift = 0;
  if (norm_at(0) > radius) {
    double c_norm = 0;
    for (double ci : c) c_norm += ci * ci;
    double low = 0;
    double high = std::sqrt(c_norm) / radius;  // ‖p(high)‖ ≤ ‖c‖/high = radius
    for (int bisection = 0; bisection < 80; ++bisection) {
      const double middle = 0.5 * (low + high);
      (norm_at(middle) > radius ? low : high) = middle;
    }
    shift = high;
  }
  std::vector<double> p(c.size());
  for (size_t i = 0; i < c.size(); ++i) p[i] = c[i] / (magnitude[i] + shift);
  return p;
}

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
  torch::Tensor layer_view(const torch::Tensor& flat, size_t h) const {
    return flat.narrow(-1, offsets_[h], widths_[h] * n_).unflatten(-1, {widths_[h], n_});
  }

  // Forward pass for members u [B, P] with fixed slopes [Z] (default: the pattern's): N is
  // then linear in each layer.
  PatternPass forward(const torch::Tensor& u) const { return forward(u, slopes_); }
  PatternPass forward(const torch::Tensor& u, const torch::Tensor& slopes) const {
    const auto weights = ncf_.layers(u);
    PatternPass pass;
    std::vector<torch::Tensor> flat;
    for (size_t h = 0; h < widths_.size(); ++h) {
      const auto hidden = torch::matmul(weights[h], h == 0 ? ncf_.inputs().t() : pass.a.back());
      flat.push_back(hidden.flatten(1));
      pass.a.push_back(hidden * layer_view(slopes, h));
    }
    pass.flat_z = torch::cat(flat, 1);
    return pass;
  }

  // ∂/∂u of Σ_i c_i·H(x_i) + Σ_k e_k·z_k with the pattern's slopes: c = ȳ when `with_output`,
  // e = `extra` ([B, Z] or [1, Z], optional). Returns [B, P]; `signals` gets ∂/∂a_k, [B, Z].
  torch::Tensor backward(const torch::Tensor& u, const PatternPass& pass, bool with_output,
                         const torch::Tensor& extra, torch::Tensor* signals = nullptr) const {
    return backward(u, pass, slopes_, with_output, extra, signals);
  }
  torch::Tensor backward(const torch::Tensor& u, const PatternPass& pass, const torch::Tensor& slopes,
                         bool with_output, const torch::Tensor& extra,
                         torch::Tensor* signals = nullptr) const {
    const auto weights = ncf_.layers(u);
    // With a single-layer model's fixed output row of ones (no gradient of its own).
    const auto layers = network_layers(weights, ncf_.options());
    const size_t depth = layers.size();
    int64_t batch = u.size(0);
    if (extra.defined()) batch = std::max(batch, extra.size(0));
    torch::Tensor delta = with_output ? ncf_.ybar().view({1, 1, n_})
                                      : torch::zeros({1, 1, n_}, options_t_);
    std::vector<torch::Tensor> grads(weights.size());
    std::vector<torch::Tensor> flat_signals(depth - 1);
    // δ_K = c; grad W_l = δ_l a_{l−1}ᵀ; δ_{l−1} = (W_lᵀ δ_l) ⊙ s_{l−1} + e_{l−1}.
    for (size_t l = depth - 1; l >= 1; --l) {
      if (l < weights.size()) grads[l] = torch::matmul(delta, pass.a[l - 1].transpose(1, 2));
      const auto up = torch::matmul(layers[l].transpose(1, 2), delta);
      flat_signals[l - 1] = up.flatten(1);
      delta = up * layer_view(slopes, l - 1);
      if (extra.defined()) delta = delta + layer_view(extra, l - 1);
    }
    grads[0] = torch::matmul(delta, ncf_.inputs());
    for (auto& g : grads) g = g.expand({batch, g.size(1), g.size(2)});
    if (signals) {
      for (auto& s : flat_signals) s = s.expand({batch, s.size(1)});
      *signals = torch::cat(flat_signals, 1);
    }
    return join_layers(grads);
  }

  // Rows ∇z_k [m, P] of the given flat indices at u [1, P].
  torch::Tensor jacobian(const torch::Tensor& u, const PatternPass& pass,
                         const torch::Tensor& index) const {
    return jacobian(u, pass, slopes_, index);
  }
  torch::Tensor jacobian(const torch::Tensor& u, const PatternPass& pass, const torch::Tensor& slopes,
                         const torch::Tensor& index) const {
    const int64_t m = index.size(0);
    if (m == 0) return torch::zeros({0, ncf_.parameters()}, options_t_);
    auto one_hot = torch::zeros({m, total_}, options_t_);
    one_hot.index_put_({torch::arange(m, torch::kLong), index}, 1.0);
    return backward(u, pass, slopes, /*with_output=*/false, one_hot);
  }

  // ‖W_h[j, :]‖ times the rms over samples of ‖a_{h−1}[:, i]‖, per flat index [Z]: the
  // scale of z_h[j, ·] (robust where one sample's input column vanishes).
  torch::Tensor typical_scales(const torch::Tensor& u, const PatternPass& pass) const {
    const auto weights = ncf_.layers(u);
    std::vector<torch::Tensor> parts;
    for (size_t h = 0; h < widths_.size(); ++h) {
      const auto rows = weights[h][0].norm(2, 1, /*keepdim=*/true);  // [k_h, 1]
      const auto columns = h == 0 ? ncf_.inputs() : pass.a[h - 1][0];
      const double rms = columns.square().sum().div(n_).sqrt().item<double>();
      parts.push_back((rows * rms).expand({widths_[h], n_}).flatten());
    }
    return torch::cat(parts).clamp_min(1e-300);
  }

  // ‖W_h[j, :]‖·‖a_{h−1}[:, i]‖ per flat index [Z]: the scale of Ncf::kinks, against which
  // held preactivations are driven to zero (so the certificate sees them as kinks).
  torch::Tensor sample_scales(const torch::Tensor& u, const PatternPass& pass) const {
    const auto weights = ncf_.layers(u);
    std::vector<torch::Tensor> parts;
    for (size_t h = 0; h < widths_.size(); ++h) {
      const auto rows = weights[h][0].norm(2, 1, /*keepdim=*/true);
      const auto columns = h == 0 ? ncf_.inputs().norm(2, 1).unsqueeze(0)
                                  : pass.a[h - 1][0].norm(2, 0, /*keepdim=*/true);
      parts.push_back((rows * columns).flatten());
    }
    return torch::cat(parts).clamp_min(1e-300);
  }

  // The true forward pass of u [P]: preactivations [Z] and activations per hidden layer.
  std::pair<torch::Tensor, std::vector<torch::Tensor>> true_pass(const torch::Tensor& u) const {
    const auto cache = feedforward_forward(ncf_.layers(u.unsqueeze(0)), ncf_.inputs(),
                                           ncf_.options());
    std::vector<torch::Tensor> flat;
    std::vector<torch::Tensor> activations;
    for (const auto& z : cache.preactivations) flat.push_back(z.flatten(1));
    for (const auto& a : cache.activations) activations.push_back(a[0]);
    return {torch::cat(flat, 1)[0], activations};
  }

  // A sample's column of layer h vanishes when all its preactivations there are held, dead,
  // themselves shadowed, or (α = 0) negative; then every preactivation of layer h + 1 at
  // that sample is zero on the manifold ("shadowed"): not a constraint of its own, and
  // without a side.
  void update_shadow() {
    shadow_mask_ = torch::zeros_like(held_mask_);
    const auto silent_entries = [&] {
      auto silent = held_mask_ | dead_mask_ | shadow_mask_;
      if (alpha_ == 0.0) silent = silent | (signs_ < 0);
      return silent;
    };
    for (size_t h = 1; h < widths_.size(); ++h) {
      const auto silent = layer_view(silent_entries(), h - 1).all(0);  // [n]
      layer_view(shadow_mask_, h)
          .copy_(silent.unsqueeze(0).expand({widths_[h], n_}) & ~layer_view(dead_mask_, h));
    }
    held_mask_ &= ~shadow_mask_;
  }

  // Signs of the free preactivations follow the point u [P]; those too close to zero to
  // have a side (kNoSide) keep theirs. Held and shadowed ones take the midpoint slope.
  void follow_signs(const torch::Tensor& u) {
    const auto z = true_pass(u).first;
    const auto scale = typical_scales(u.unsqueeze(0), forward(u.unsqueeze(0)));
    const auto free = ~(held_mask_ | dead_mask_ | shadow_mask_) & (z.abs() > kNoSide * scale);
    signs_ = torch::where(free, torch::where(z > 0, torch::ones_like(z), -torch::ones_like(z)), signs_);
    update_shadow();
    slopes_ = torch::where(signs_ > 0, torch::ones_like(z), torch::full_like(z, alpha_));
    slopes_.masked_fill_(held_mask_ | shadow_mask_, held_slope_);
  }

  // Free preactivations sitting on their kink without a side (|z| ≤ kNoSide) that are not
  // about to leave it (`exempt_`: a just-released kink and what it feeds) are held: a step
  // would otherwise cross them unseen. Returns true when the held set grew.
  bool hold_sideless(const torch::Tensor& u) {
    const auto z = true_pass(u).first;
    const auto scale = typical_scales(u.unsqueeze(0), forward(u.unsqueeze(0)));
    const auto sideless = ~(held_mask_ | dead_mask_ | shadow_mask_ | exempt_) & (z.abs() <= kNoSide * scale);
    if (!sideless.any().item<bool>()) return false;
    held_mask_ |= sideless;
    follow_signs(u);
    return true;
  }

  // On releasing kink k = (h, m, i) to `side`: the preactivations it feeds at sample i that
  // sit at zero (shadowed so far) take the signs they get when a_k leaves zero that way, and
  // stay free for the next step.
  void prepare_release(const torch::Tensor& u, int64_t k, double side) {
    size_t h = 0;
    while (h + 1 < offsets_.size() && k >= offsets_[h + 1]) ++h;
    const int64_t m = (k - offsets_[h]) / n_;
    const int64_t i = (k - offsets_[h]) % n_;
    signs_[k] = side;
    exempt_[k] = true;
    const auto weights = ncf_.layers(u.unsqueeze(0));
    const auto [z, activations] = true_pass(u);
    const auto scale = typical_scales(u.unsqueeze(0), forward(u.unsqueeze(0)));
    const double epsilon = kProbe * (activations[h].square().sum().div(n_).sqrt().item<double>() + 1e-300);
    auto column = activations[h].select(1, i).clone();
    column[m] = side > 0 ? epsilon : -alpha_ * epsilon;
    for (size_t g = h + 1; g < widths_.size(); ++g) {
      const auto probe = torch::matmul(weights[g][0], column);  // z_g[:, i] after the move
      for (int64_t j = 0; j < widths_[g]; ++j) {
        const int64_t index = offsets_[g] + j * n_ + i;
        if (dead_mask_[index].item<bool>() ||
            std::abs(z[index].item<double>()) > kNoSide * scale[index].item<double>()) {
          continue;
        }
        const double value = probe[j].item<double>();
        if (value != 0) signs_[index] = value > 0 ? 1.0 : -1.0;
        exempt_[index] = true;
        held_mask_[index] = false;
      }
      column = poly_leaky_relu(probe, ncf_.options().activation());
    }
  }

  torch::Tensor held_index() const { return held_mask_.nonzero().flatten(); }

  // Moves u [P] back onto {z_k = 0, k held} by Gauss–Newton (minimum-norm corrections),
  // then onto the sphere (z is homogeneous, so scaling keeps z_k = 0). Each iteration takes
  // the free slopes from the true signs at the current point, so the held z that reach zero
  // are the true ones even where the correction moves a near-zero free one across its kink.
  torch::Tensor retract(torch::Tensor u, const torch::Tensor& held) const {
    for (int iteration = 0; held.size(0) > 0 && iteration < 12; ++iteration) {
      const auto u1 = u.unsqueeze(0);
      const auto z_true = true_pass(u).first;
      const auto fixed = held_mask_ | shadow_mask_;
      auto slopes = torch::where(z_true > 0, torch::ones_like(z_true),
                                 torch::where(z_true < 0, torch::full_like(z_true, alpha_), slopes_));
      slopes = torch::where(fixed, slopes_, slopes);
      slopes.index_fill_(0, held, held_slope_);
      const auto pass = forward(u1, slopes);
      const auto z = pass.flat_z[0].index_select(0, held);
      const auto scale = sample_scales(u1, pass).index_select(0, held);
      if ((z.abs() / scale).max().item<double>() <= kOnKink) break;
      const auto rows = jacobian(u1, pass, slopes, held);
      const auto correction = least_squares(rows, z).masked_fill(frozen_, 0.0);
      // A degenerate set of held kinks can ask for a huge correction: give up instead (the
      // candidate then fails its ascent test).
      if (!torch::isfinite(correction).all().item<bool>() || correction.norm().item<double>() > 1.0) break;
      u = u - correction;
    }
    return u / u.norm();
  }

  // For each held kink k = (h, m, i): the first-order change of N per unit of z_k when z_k
  // leaves the kink upward (a_k = z_k) and downward (a_k = α·z_k), measured by propagating
  // sample i's column with a_k = ±ε through the true activations — exact for small ε, also
  // where later layers' preactivations at that sample are shadowed and pick their own sides.
  std::pair<torch::Tensor, torch::Tensor> one_sided_rates(const torch::Tensor& u,
                                                          const torch::Tensor& held) const {
    const int64_t m = held.size(0);
    auto up = torch::zeros({m}, options_t_);
    auto down = torch::zeros({m}, options_t_);
    const auto weights = network_layers(ncf_.layers(u.unsqueeze(0)), ncf_.options());
    const auto activations = true_pass(u).second;
    const auto& activation = ncf_.options().activation();
    const auto index = held.to(torch::kCPU);
    const auto accessor = index.accessor<int64_t, 1>();
    for (int64_t f = 0; f < m; ++f) {
      const int64_t k = accessor[f];
      size_t h = 0;
      while (h + 1 < offsets_.size() && k >= offsets_[h + 1]) ++h;
      const int64_t j = (k - offsets_[h]) / n_;
      const int64_t i = (k - offsets_[h]) % n_;
      const auto column = activations[h].select(1, i);  // [k_h]
      const double epsilon =
          kProbe * (activations[h].square().sum().div(n_).sqrt().item<double>() + 1e-300);
      auto probes = column.unsqueeze(0).repeat({3, 1});  // a_k = 0, +ε, −αε
      probes.select(1, j).copy_(torch::tensor({0.0, epsilon, -alpha_ * epsilon}, options_t_));
      auto hidden = probes.t();  // [k_h, 3]
      for (size_t l = h + 1; l < weights.size(); ++l) {
        hidden = torch::matmul(weights[l][0], hidden);
        if (l + 1 < weights.size()) hidden = poly_leaky_relu(hidden, activation);
      }
      const auto outputs = hidden[0] * ncf_.ybar()[i];  // [3]
      up[f] = (outputs[1] - outputs[0]) / epsilon;
      down[f] = (outputs[2] - outputs[0]) / epsilon;
    }
    return {up, down};
  }

  // Removes units that carry nothing (and, for α = 0, units with no positive preactivation:
  // their incoming and outgoing gradients vanish, so both must be zero at a KKT point with
  // λ = L·N > 0). Returns true when a unit was removed; u stays on the sphere.
  bool remove_dead_units(torch::Tensor& u) {
    bool changed = false;
    for (int round = 0; round < 8; ++round) {
      bool removed = false;
      const auto weights = ncf_.layers(u.unsqueeze(0));  // views into u
      // A single-layer model's output row is fixed to ones: it is no weight to remove.
      const auto outgoing_layers = network_layers(weights, ncf_.options());
      const auto z = true_pass(u).first;
      const auto pass = forward(u.unsqueeze(0));
      const auto scale = typical_scales(u.unsqueeze(0), pass);
      for (size_t h = 0; h < widths_.size(); ++h) {
        const bool learned_outgoing = h + 1 < weights.size();
        const auto incoming = weights[h][0].norm(2, 1);
        const auto outgoing = outgoing_layers[h + 1][0].norm(2, 0);
        auto dead = incoming * outgoing <= kDeadCarry;
        if (alpha_ == 0.0) {
          dead = dead | (layer_view(z, h) <= options_.kink_tol() * layer_view(scale, h)).all(1);
        }
        for (int64_t j = 0; j < widths_[h]; ++j) {
          if (!dead[j].item<bool>() || dead_units_[h][j]) continue;
          dead_units_[h][j] = true;
          removed = true;
          weights[h][0][j].zero_();
          if (learned_outgoing) weights[h + 1][0].select(1, j).zero_();
          layer_view(dead_mask_, h)[j].fill_(true);
          layer_view(held_mask_, h)[j].fill_(false);
        }
      }
      if (!removed) break;
      changed = true;
      u = u / u.norm();
    }
    if (changed) {
      // Frozen coordinates: the weights of removed units (exactly zero from now on).
      const auto marker = torch::zeros_like(u);
      const auto weights = ncf_.layers(marker.unsqueeze(0));
      for (size_t h = 0; h < widths_.size(); ++h) {
        for (int64_t j = 0; j < widths_[h]; ++j) {
          if (!dead_units_[h][j]) continue;
          weights[h][0][j].fill_(1.0);
          if (h + 1 < weights.size()) weights[h + 1][0].select(1, j).fill_(1.0);
        }
      }
      frozen_ = marker > 0.5;
      update_shadow();
    }
    return changed;
  }

  const Ncf& ncf_;
  KinkNewtonOptions options_;
  double alpha_;
  double held_slope_ = 0.5;
  int64_t n_ = 0;
  int64_t total_ = 0;
  std::vector<int64_t> offsets_;
  std::vector<int64_t> widths_;
  torch::TensorOptions options_t_;
  torch::Tensor slopes_;          // [Z] slope per preactivation
  torch::Tensor signs_;           // [Z] ±1: the side of its kink each free preactivation is on
  torch::Tensor held_mask_;       // [Z] bool: held at z = 0
  torch::Tensor shadow_mask_;     // [Z] bool: zero because its whole input column is
  torch::Tensor dead_mask_;       // [Z] bool: preactivations of removed units
  torch::Tensor frozen_;          // [P] bool: weights of removed units
  torch::Tensor release_count_;   // [Z] int64: how often each kink was released
  torch::Tensor exempt_;          // [Z] bool: leaving the kink in the coming step
  std::vector<std::vector<bool>> dead_units_;
};

KinkNewtonResult KinkNewton::run(const torch::Tensor& start) {
  const int64_t parameters = ncf_.parameters();
  auto u = (start / start.norm()).to(options_t_).clone();
  const auto masks = torch::TensorOptions(torch::kBool).device(options_t_.device());
  held_mask_ = torch::zeros({total_}, masks);
  shadow_mask_ = torch::zeros({total_}, masks);
  dead_mask_ = torch::zeros({total_}, masks);
  exempt_ = torch::zeros({total_}, masks);
  frozen_ = torch::zeros({parameters}, masks);
  release_count_ = torch::zeros({total_}, torch::TensorOptions(torch::kLong).device(options_t_.device()));
  for (int64_t width : widths_) dead_units_.emplace_back(static_cast<size_t>(width), false);
  signs_ = torch::ones({total_}, options_t_);
  slopes_ = torch::ones({total_}, options_t_);
  follow_signs(u);
  remove_dead_units(u);
  {
    // Hold the preactivations already on their kink (|z| ≤ kink_tol·‖row‖·‖input‖).
    const auto weights = ncf_.layers(u.unsqueeze(0));
    const auto [z, activations] = true_pass(u);
    std::vector<torch::Tensor> near;
    for (size_t h = 0; h < widths_.size(); ++h) {
      const auto rows = weights[h][0].norm(2, 1, /*keepdim=*/true);
      const auto columns = h == 0 ? ncf_.inputs().norm(2, 1).unsqueeze(0)
                                  : activations[h - 1].norm(2, 0, /*keepdim=*/true);
      near.push_back((layer_view(z, h).abs() <= options_.kink_tol() * rows * columns).flatten());
    }
    held_mask_ = torch::cat(near) & ~dead_mask_;
    update_shadow();
    follow_signs(u);
    u = retract(u, held_index());
  }

  KinkNewtonResult result;
  double radius = 0.05;  // trust radius on ‖step‖ (‖û‖ = 1)
  double value = ncf_.value(u.unsqueeze(0)).item<double>();
  for (int64_t iteration = 0; iteration < options_.max_iterations(); ++iteration) {
    result.iterations = iteration + 1;
    if (hold_sideless(u)) {
      u = retract(u, held_index());
      value = ncf_.value(u.unsqueeze(0)).item<double>();
    }
    const auto u1 = u.unsqueeze(0);
    const auto pass = forward(u1);
    torch::Tensor signals;
    const auto gradient = backward(u1, pass, /*with_output=*/true, {}, &signals)[0];
    signals = signals[0];
    const double gradient_norm = gradient.norm().item<double>() + 1e-300;
    if (!std::isfinite(gradient_norm)) break;
    const auto held = held_index();
    const int64_t m = held.size(0);
    // Work on the coordinates of live units only.
    const auto live = (~frozen_).nonzero().flatten();
    const int64_t size = live.size(0);
    const auto rows = jacobian(u1, pass, held);
    const auto constraints = torch::cat({rows, u1}, 0).index_select(1, live);
    const auto live_gradient = gradient.index_select(0, live);
    // Null space of the constraint normals: the tangent space of the kink manifold.
    const auto svd = torch::linalg_svd(constraints, /*full_matrices=*/true);
    const auto singular = std::get<1>(svd);
    const int64_t rank = (singular > 1e-12 * singular[0]).sum().item<int64_t>();
    if (rank >= size) break;  // an isolated point of the manifold
    const auto basis = std::get<2>(svd).narrow(0, rank, size - rank).t();  // [P', P' − r]
    const auto reduced_gradient = torch::matmul(basis.t(), live_gradient);
    const double residual = reduced_gradient.norm().item<double>() / gradient_norm;
    result.manifold_residual = residual;
    // ∇N_b = Σ_k μ_k ∇z_k + λu on the live coordinates: the multipliers.
    const auto multipliers = least_squares(constraints.t(), live_gradient);
    const auto mu = multipliers.narrow(0, 0, m);
    const double lambda = multipliers[m].item<double>();

    if (m > 0) {
      // Moving along d with ⟨∇z_k, d⟩ = 1 (other constraints kept) changes N_b by μ_k, of
      // which b·δ_k runs through a_k with the held slope b; the true change replaces that
      // part by the one-sided rate. Relative to ‖∇N‖ per unit distance: the release gains.
      // (For a concave kink they are positive exactly when the Clarke slope s_k = b − μ_k/δ_k
      // lies above 1 or below α.)
      const auto [up, down] = one_sided_rates(u, held);
      const auto through = mu - held_slope_ * signals.index_select(0, held);
      const auto norms = rows.norm(2, 1) / gradient_norm;
      const auto plus = (through + up) * norms;
      const auto minus = (-through + down) * norms;
      // A kink released three times stays held (no cycling).
      const auto best = torch::maximum(plus, minus).masked_fill(
          release_count_.index_select(0, held) >= 3, -1.0);
      const int64_t f = best.argmax().item<int64_t>();
      const double gain = best[f].item<double>();
      // Release only once the problem on the manifold is (nearly) solved: the multipliers
      // are then accurate and the next step leaves the kink on the chosen side.
      if (gain > 0.1 * options_.tol() && residual < 0.1 * gain) {
        const int64_t k = held[f].item<int64_t>();
        held_mask_[k] = false;
        release_count_[k] += 1;
        prepare_release(u, k, plus[f].item<double>() >= minus[f].item<double>() ? 1.0 : -1.0);
        follow_signs(u);
        continue;
      }
    }
    if (residual < 0.1 * options_.tol()) break;

    // Hessian of the Lagrangian N_b − Σ μ_k z_k − (λ/2)‖u‖²: its gradient is affine along
    // each coordinate (every term is linear in each layer), so column r = ∇(u + e_r) − ∇(u).
    auto extra = torch::zeros({1, total_}, options_t_);
    if (m > 0) extra.index_put_({torch::zeros_like(held), held}, -mu);
    const auto shifted = u1 + torch::eye(parameters, options_t_).index_select(0, live);
    const auto columns = backward(shifted, forward(shifted), true, extra).index_select(1, live) -
                         backward(u1, pass, true, extra).index_select(1, live);
    const auto hessian = 0.5 * (columns + columns.t()) - lambda * torch::eye(size, options_t_);
    const auto reduced_hessian = torch::matmul(basis.t(), torch::matmul(hessian, basis));
    if (!torch::isfinite(reduced_hessian).all().item<bool>()) break;
    // Ascent: every curvature counted as negative (e → −|e|), tiny ones floored. Only |e| and
    // the eigenvectors enter, which an SVD of the symmetric matrix also gives (singular
    // values |e|, left vectors ±q): the fallback where LAPACK's eigh does not converge.
    torch::Tensor vectors;
    torch::Tensor eigenvalues;
    try {
      const auto eig = torch::linalg_eigh(reduced_hessian);
      vectors = std::get<1>(eig);
      eigenvalues = std::get<0>(eig).abs().to(torch::kCPU);
    } catch (const c10::Error&) {
      try {
        const auto decomposition = torch::linalg_svd(reduced_hessian, /*full_matrices=*/false);
        vectors = std::get<0>(decomposition);
        eigenvalues = std::get<1>(decomposition).to(torch::kCPU);
      } catch (const c10::Error&) {
        break;  // keep the last point; the caller's certificate judges it
      }
    }
    const double floor = 1e-12 * std::max(eigenvalues.max().item<double>(), std::abs(lambda)) + 1e-300;
    const auto magnitudes_t = eigenvalues.clamp_min(floor).contiguous();
    const auto c_t = torch::matmul(vectors.t(), reduced_gradient).to(torch::kCPU).contiguous();
    const std::vector<double> magnitudes(magnitudes_t.data_ptr<double>(),
                                         magnitudes_t.data_ptr<double>() + magnitudes_t.numel());
    const std::vector<double> c(c_t.data_ptr<double>(), c_t.data_ptr<double>() + c_t.numel());

    // Trust-region steps; a step stops at the first free preactivation that changes sign
    // (it joins the held set) and is retracted onto the manifold.
    const auto z0 = pass.flat_z[0];
    const auto scale = typical_scales(u1, pass);
    const auto watched = ~(held_mask_ | dead_mask_ | shadow_mask_) & (z0.abs() > kNoSide * scale);
    bool accepted = false;
    for (int attempt = 0; attempt < 40 && !accepted; ++attempt) {
      const auto p = trust_region_step(c, magnitudes, radius);
      double linear = 0;
      double curvature = 0;
      double p_norm = 0;
      for (size_t i = 0; i < p.size(); ++i) {
        linear += c[i] * p[i];
        curvature += magnitudes[i] * p[i] * p[i];
        p_norm += p[i] * p[i];
      }
      p_norm = std::sqrt(p_norm);
      auto step = torch::zeros({parameters}, options_t_);
      step.index_put_({live}, torch::matmul(basis, torch::matmul(
                                  vectors, torch::tensor(p, torch::kFloat64).to(options_t_))));
      auto candidate = u + step;
      const auto zc = forward(candidate.unsqueeze(0)).flat_z[0];
      const auto crossed = watched & (signs_ * zc < 0);
      double fraction = 1;
      int64_t added = -1;
      if (crossed.any().item<bool>()) {
        const auto at = torch::where(crossed, (z0 / (z0 - zc)).clamp(0.0, 1.0),
                                     torch::full_like(z0, std::numeric_limits<double>::infinity()));
        added = at.argmin().item<int64_t>();
        fraction = at[added].item<double>();
        candidate = u + fraction * step;
      }
      auto held_candidate = held_mask_.clone();
      if (added >= 0) held_candidate[added] = true;
      candidate = retract(candidate, held_candidate.nonzero().flatten());
      const double candidate_value = ncf_.value(candidate.unsqueeze(0)).item<double>();
      const double predicted = fraction * linear - 0.5 * fraction * fraction * curvature;
      const double actual = candidate_value - value;
      const double rounding = kValueRounding * std::abs(value);
      // Below rounding, N cannot judge a step: Newton's model is trusted there.
      const bool unresolved = predicted <= 1e3 * rounding;
      accepted = actual >= 1e-4 * predicted || (actual >= -4 * rounding && unresolved);
      if (!accepted) {
        radius = 0.25 * std::min(radius, fraction * p_norm);
        if (radius < 1e-14) break;
        continue;
      }
      if (added < 0 && (unresolved || actual >= 0.75 * predicted) && p_norm >= 0.99 * radius) {
        radius = std::min(1.0, 2 * radius);
      } else if (!unresolved && actual < 0.25 * predicted) {
        radius = std::max(0.25 * fraction * p_norm, 1e-12);
      }
      u = candidate;
      value = candidate_value;
      if (added >= 0) {
        held_mask_[added] = true;
        update_shadow();
      }
    }
    if (!accepted) break;  // no ascent left at float64 resolution
    exempt_.zero_();
    follow_signs(u);
    if (remove_dead_units(u)) {
      follow_signs(u);
      u = retract(u, held_index());
      value = ncf_.value(u.unsqueeze(0)).item<double>();
    }
  }
  result.direction = u;
  result.held_kinks = held_mask_.sum().item<int64_t>();
  for (const auto& layer : dead_units_) {
    result.dead_units += static_cast<int64_t>(std::count(layer.begin(), layer.end(), true));
  }
  return result;
}

}  // namespace

KinkNewtonResult kink_newton(const Ncf& ncf, const torch::Tensor& start,
                             const KinkNewtonOptions& options) {
  const auto& activation = ncf.options().activation();
  TORCH_CHECK(activation.p() == 1 && activation.alpha() != 1.0,
              "kink_newton – needs a kinked activation (p = 1, α ≠ 1) – got p = ", activation.p(),
              ", α = ", activation.alpha());
  TORCH_CHECK(start.dim() == 1 && start.size(0) == ncf.parameters(),
              "kink_newton – start must be [", ncf.parameters(), "] – got ", start.sizes());
  torch::NoGradGuard no_grad;
  return KinkNewton(ncf, options).run(start);
}

}  // namespace ncflab
