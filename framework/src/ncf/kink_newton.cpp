// The active-set Newton method of kink_newton.h: on the kink manifold, the exact Hessian
// of the Lagrangian, a trust-region step, and the rules that add and release kinks. The
// manifold itself (passes with fixed slopes, signs, retraction) is kink_manifold.cpp.
#include "ncflab/ncf/kink_newton.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kink_newton_solver.h"

namespace ncflab {
namespace kink_detail {
namespace {

// Trust-region step in the eigenbasis of the (negated, made positive) reduced Hessian:
// p_i = c_i / (|e_i| + ν) with ν ≥ 0 the smallest shift giving ‖p‖ ≤ radius.
std::vector<double> trust_region_step(const std::vector<double>& c,
                                      const std::vector<double>& magnitude, double radius) {
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

}  // namespace

torch::Tensor KinkNewton::start_on_manifold(const torch::Tensor& start) {
  const int64_t parameters = ncf_.parameters();
  auto u = (start / start.norm()).to(options_t_).clone();
  const auto masks = torch::TensorOptions(torch::kBool).device(options_t_.device());
  held_mask_ = torch::zeros({total_}, masks);
  shadow_mask_ = torch::zeros({total_}, masks);
  dead_mask_ = torch::zeros({total_}, masks);
  exempt_ = torch::zeros({total_}, masks);
  frozen_ = torch::zeros({parameters}, masks);
  release_count_ =
      torch::zeros({total_}, torch::TensorOptions(torch::kLong).device(options_t_.device()));
  for (int64_t width : widths_) dead_units_.emplace_back(static_cast<size_t>(width), false);
  signs_ = torch::ones({total_}, options_t_);
  slopes_ = torch::ones({total_}, options_t_);
  follow_signs(u);
  remove_dead_units(u);
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
  return retract(u, held_index());
}

std::optional<KinkNewton::Tangent> KinkNewton::tangent_at(const torch::Tensor& u) const {
  Tangent t;
  t.u1 = u.unsqueeze(0);
  t.pass = forward(t.u1);
  const auto gradient = backward(t.u1, t.pass, /*with_output=*/true, {}, &t.signals)[0];
  t.signals = t.signals[0];
  t.gradient_norm = gradient.norm().item<double>() + 1e-300;
  if (!std::isfinite(t.gradient_norm)) return std::nullopt;
  t.held = held_index();
  const int64_t m = t.held.size(0);
  // Work on the coordinates of live units only.
  t.live = (~frozen_).nonzero().flatten();
  const int64_t size = t.live.size(0);
  t.rows = jacobian(t.u1, t.pass, t.held);
  const auto constraints = torch::cat({t.rows, t.u1}, 0).index_select(1, t.live);
  const auto live_gradient = gradient.index_select(0, t.live);
  // Null space of the constraint normals: the tangent space of the kink manifold.
  const auto svd = torch::linalg_svd(constraints, /*full_matrices=*/true);
  const auto singular = std::get<1>(svd);
  const int64_t rank = (singular > 1e-12 * singular[0]).sum().item<int64_t>();
  if (rank >= size) return std::nullopt;                        // an isolated point of the manifold
  t.basis = std::get<2>(svd).narrow(0, rank, size - rank).t();  // [P', P' − r]
  t.reduced_gradient = torch::matmul(t.basis.t(), live_gradient);
  t.residual = t.reduced_gradient.norm().item<double>() / t.gradient_norm;
  // ∇N_b = Σ_k μ_k ∇z_k + λu on the live coordinates: the multipliers.
  const auto multipliers = least_squares(constraints.t(), live_gradient);
  t.mu = multipliers.narrow(0, 0, m);
  t.lambda = multipliers[m].item<double>();
  return t;
}

bool KinkNewton::release_a_kink(const torch::Tensor& u, const Tangent& t) {
  if (t.held.size(0) == 0) return false;
  // Moving along d with ⟨∇z_k, d⟩ = 1 (other constraints kept) changes N_b by μ_k, of
  // which b·δ_k runs through a_k with the held slope b; the true change replaces that
  // part by the one-sided rate. Relative to ‖∇N‖ per unit distance: the release gains.
  // (For a concave kink they are positive exactly when the Clarke slope s_k = b − μ_k/δ_k
  // lies above 1 or below α.)
  const auto [up, down] = one_sided_rates(u, t.held);
  const auto through = t.mu - held_slope_ * t.signals.index_select(0, t.held);
  const auto norms = t.rows.norm(2, 1) / t.gradient_norm;
  const auto plus = (through + up) * norms;
  const auto minus = (-through + down) * norms;
  // A kink released three times stays held (no cycling).
  const auto best =
      torch::maximum(plus, minus).masked_fill(release_count_.index_select(0, t.held) >= 3, -1.0);
  const int64_t f = best.argmax().item<int64_t>();
  const double gain = best[f].item<double>();
  // Release only once the problem on the manifold is (nearly) solved: the multipliers
  // are then accurate and the next step leaves the kink on the chosen side.
  if (!(gain > 0.1 * options_.tol() && t.residual < 0.1 * gain)) return false;
  const int64_t k = t.held[f].item<int64_t>();
  held_mask_[k] = false;
  release_count_[k] += 1;
  prepare_release(u, k, plus[f].item<double>() >= minus[f].item<double>() ? 1.0 : -1.0);
  follow_signs(u);
  return true;
}

std::optional<KinkNewton::AscentModel> KinkNewton::ascent_model(const Tangent& t) const {
  const int64_t parameters = ncf_.parameters();
  const int64_t size = t.live.size(0);
  // Hessian of the Lagrangian N_b − Σ μ_k z_k − (λ/2)‖u‖²: its gradient is affine along
  // each coordinate (every term is linear in each layer), so column r = ∇(u + e_r) − ∇(u).
  auto extra = torch::zeros({1, total_}, options_t_);
  if (t.held.size(0) > 0) extra.index_put_({torch::zeros_like(t.held), t.held}, -t.mu);
  const auto shifted = t.u1 + torch::eye(parameters, options_t_).index_select(0, t.live);
  const auto columns = backward(shifted, forward(shifted), true, extra).index_select(1, t.live) -
                       backward(t.u1, t.pass, true, extra).index_select(1, t.live);
  const auto hessian = 0.5 * (columns + columns.t()) - t.lambda * torch::eye(size, options_t_);
  const auto reduced_hessian = torch::matmul(t.basis.t(), torch::matmul(hessian, t.basis));
  if (!torch::isfinite(reduced_hessian).all().item<bool>()) return std::nullopt;
  // Ascent: every curvature counted as negative (e → −|e|), tiny ones floored. Only |e| and
  // the eigenvectors enter, which an SVD of the symmetric matrix also gives (singular
  // values |e|, left vectors ±q): the fallback where LAPACK's eigh does not converge.
  AscentModel model;
  torch::Tensor eigenvalues;
  try {
    const auto eig = torch::linalg_eigh(reduced_hessian);
    model.vectors = std::get<1>(eig);
    eigenvalues = std::get<0>(eig).abs().to(torch::kCPU);
  } catch (const c10::Error&) {
    try {
      const auto decomposition = torch::linalg_svd(reduced_hessian, /*full_matrices=*/false);
      model.vectors = std::get<0>(decomposition);
      eigenvalues = std::get<1>(decomposition).to(torch::kCPU);
    } catch (const c10::Error&) {
      return std::nullopt;  // keep the last point; the caller's certificate judges it
    }
  }
  const double floor =
      1e-12 * std::max(eigenvalues.max().item<double>(), std::abs(t.lambda)) + 1e-300;
  const auto magnitudes = eigenvalues.clamp_min(floor).contiguous();
  const auto c = torch::matmul(model.vectors.t(), t.reduced_gradient).to(torch::kCPU).contiguous();
  model.magnitudes.assign(magnitudes.data_ptr<double>(),
                          magnitudes.data_ptr<double>() + magnitudes.numel());
  model.c.assign(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  return model;
}

bool KinkNewton::trust_region_ascent(torch::Tensor& u, double& value, double& radius,
                                     const Tangent& t, const AscentModel& model) {
  const auto& c = model.c;
  const auto& magnitudes = model.magnitudes;
  // Trust-region steps; a step stops at the first free preactivation that changes sign
  // (it joins the held set) and is retracted onto the manifold.
  const auto z0 = t.pass.flat_z[0];
  const auto scale = typical_scales(t.u1, t.pass);
  const auto watched = ~(held_mask_ | dead_mask_ | shadow_mask_) & (z0.abs() > kNoSide * scale);
  for (int attempt = 0; attempt < 40; ++attempt) {
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
    auto step = torch::zeros({ncf_.parameters()}, options_t_);
    step.index_put_(
        {t.live},
        torch::matmul(t.basis, torch::matmul(model.vectors,
                                             torch::tensor(p, torch::kFloat64).to(options_t_))));
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
    if (!(actual >= 1e-4 * predicted || (actual >= -4 * rounding && unresolved))) {
      radius = 0.25 * std::min(radius, fraction * p_norm);
      if (radius < 1e-14) return false;
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
    return true;
  }
  return false;
}

KinkNewtonResult KinkNewton::run(const torch::Tensor& start) {
  auto u = start_on_manifold(start);
  KinkNewtonResult result;
  double radius = 0.05;  // trust radius on ‖step‖ (‖û‖ = 1)
  double value = ncf_.value(u.unsqueeze(0)).item<double>();
  for (int64_t iteration = 0; iteration < options_.max_iterations(); ++iteration) {
    result.iterations = iteration + 1;
    if (hold_sideless(u)) {
      u = retract(u, held_index());
      value = ncf_.value(u.unsqueeze(0)).item<double>();
    }
    const auto tangent = tangent_at(u);
    if (!tangent) break;
    result.manifold_residual = tangent->residual;
    if (release_a_kink(u, *tangent)) continue;
    if (tangent->residual < 0.1 * options_.tol()) break;
    const auto model = ascent_model(*tangent);
    if (!model || !trust_region_ascent(u, value, radius, *tangent, *model)) break;
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

}  // namespace kink_detail

KinkNewtonResult kink_newton(const Ncf& ncf, const torch::Tensor& start,
                             const KinkNewtonOptions& options) {
  const auto& activation = ncf.options().activation();
  TORCH_CHECK(has_kinks(activation),
              "kink_newton – needs a kinked activation (p = 1, α ≠ 1) – got p = ", activation.p(),
              ", α = ", activation.alpha());
  TORCH_CHECK(start.dim() == 1 && start.size(0) == ncf.parameters(),
              "kink_newton – start must be [", ncf.parameters(), "] – got ", start.sizes());
  torch::NoGradGuard no_grad;
  return kink_detail::KinkNewton(ncf, options).run(start);
}

}  // namespace ncflab
