// The kink manifold of the active-set Newton solver: passes with fixed slopes, the
// scales that say when a preactivation is on its kink, signs, holds and releases, the
// retraction onto {z_k = 0} and the removal of dead units.
#include <algorithm>
#include <cmath>

#include "kink_newton_solver.h"

namespace ncflab::kink_detail {

torch::Tensor least_squares(const torch::Tensor& matrix, const torch::Tensor& target) {
  return std::get<0>(torch::linalg_lstsq(matrix, target.unsqueeze(1), c10::nullopt,
                                         c10::string_view("gelsd")))
      .squeeze(1);
}

PatternPass KinkNewton::forward(const torch::Tensor& u, const torch::Tensor& slopes) const {
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

torch::Tensor KinkNewton::backward(const torch::Tensor& u, const PatternPass& pass,
                                   const torch::Tensor& slopes, bool with_output,
                                   const torch::Tensor& extra, torch::Tensor* signals) const {
  const auto weights = ncf_.layers(u);
  // With a single-layer model's fixed output row of ones (no gradient of its own).
  const auto layers = network_layers(weights, ncf_.options());
  const size_t depth = layers.size();
  int64_t batch = u.size(0);
  if (extra.defined()) batch = std::max(batch, extra.size(0));
  torch::Tensor delta =
      with_output ? ncf_.ybar().view({1, 1, n_}) : torch::zeros({1, 1, n_}, options_t_);
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

torch::Tensor KinkNewton::jacobian(const torch::Tensor& u, const PatternPass& pass,
                                   const torch::Tensor& slopes, const torch::Tensor& index) const {
  const int64_t m = index.size(0);
  if (m == 0) return torch::zeros({0, ncf_.parameters()}, options_t_);
  auto one_hot = torch::zeros({m, total_}, options_t_);
  one_hot.index_put_({torch::arange(m, torch::kLong), index}, 1.0);
  return backward(u, pass, slopes, /*with_output=*/false, one_hot);
}

torch::Tensor KinkNewton::typical_scales(const torch::Tensor& u, const PatternPass& pass) const {
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

torch::Tensor KinkNewton::sample_scales(const torch::Tensor& u, const PatternPass& pass) const {
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

std::pair<torch::Tensor, std::vector<torch::Tensor>> KinkNewton::true_pass(
    const torch::Tensor& u) const {
  const auto cache =
      feedforward_forward(ncf_.layers(u.unsqueeze(0)), ncf_.inputs(), ncf_.options());
  std::vector<torch::Tensor> flat;
  std::vector<torch::Tensor> activations;
  for (const auto& z : cache.preactivations) flat.push_back(z.flatten(1));
  for (const auto& a : cache.activations) activations.push_back(a[0]);
  return {torch::cat(flat, 1)[0], activations};
}

void KinkNewton::update_shadow() {
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

void KinkNewton::follow_signs(const torch::Tensor& u) {
  const auto z = true_pass(u).first;
  const auto scale = typical_scales(u.unsqueeze(0), forward(u.unsqueeze(0)));
  const auto free = ~(held_mask_ | dead_mask_ | shadow_mask_) & (z.abs() > kNoSide * scale);
  signs_ =
      torch::where(free, torch::where(z > 0, torch::ones_like(z), -torch::ones_like(z)), signs_);
  update_shadow();
  slopes_ = torch::where(signs_ > 0, torch::ones_like(z), torch::full_like(z, alpha_));
  slopes_.masked_fill_(held_mask_ | shadow_mask_, held_slope_);
}

bool KinkNewton::hold_sideless(const torch::Tensor& u) {
  const auto z = true_pass(u).first;
  const auto scale = typical_scales(u.unsqueeze(0), forward(u.unsqueeze(0)));
  const auto sideless =
      ~(held_mask_ | dead_mask_ | shadow_mask_ | exempt_) & (z.abs() <= kNoSide * scale);
  if (!sideless.any().item<bool>()) return false;
  held_mask_ |= sideless;
  follow_signs(u);
  return true;
}

void KinkNewton::prepare_release(const torch::Tensor& u, int64_t k, double side) {
  size_t h = 0;
  while (h + 1 < offsets_.size() && k >= offsets_[h + 1]) ++h;
  const int64_t m = (k - offsets_[h]) / n_;
  const int64_t i = (k - offsets_[h]) % n_;
  signs_[k] = side;
  exempt_[k] = true;
  const auto weights = ncf_.layers(u.unsqueeze(0));
  const auto [z, activations] = true_pass(u);
  const auto scale = typical_scales(u.unsqueeze(0), forward(u.unsqueeze(0)));
  const double epsilon =
      kProbe * (activations[h].square().sum().div(n_).sqrt().item<double>() + 1e-300);
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

torch::Tensor KinkNewton::retract(torch::Tensor u, const torch::Tensor& held) const {
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
    if (!torch::isfinite(correction).all().item<bool>() || correction.norm().item<double>() > 1.0)
      break;
    u = u - correction;
  }
  return u / u.norm();
}

std::pair<torch::Tensor, torch::Tensor> KinkNewton::one_sided_rates(
    const torch::Tensor& u, const torch::Tensor& held) const {
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

bool KinkNewton::remove_dead_units(torch::Tensor& u) {
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

}  // namespace ncflab::kink_detail
