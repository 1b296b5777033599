// The NCF flow's field in a mode of a net with kinks (flow_kinks.h): the mode's polynomial,
// the Filippov slopes of the kinks it slides along, margins, and the new mode at a kink.
#include "flow_kinks.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kink_newton_solver.h"

namespace ncflab::flow_detail {
namespace {

// A row of W_l, or a sample's input column to it, has collapsed when its norm is below this
// fraction of its size in a balanced net (‖v‖/√layers per layer): z's sign then flips with
// the row or with the kinks below, and its margin says nothing about a distance to the kink.
constexpr double kCollapsed = 1e-6;
// Newton steps for the sliding slopes: one is exact when the sliding kinks sit in one layer
// (∇N is affine in one layer's slopes); several layers make the problem multilinear.
constexpr int kNewtonSteps = 30;

std::vector<torch::Tensor> stacked_sides(const std::vector<KinkMode*>& modes) {
  std::vector<torch::Tensor> stacked;
  for (size_t l = 0; l < modes.front()->sides.size(); ++l) {
    std::vector<torch::Tensor> rows;
    for (const auto* mode : modes) rows.push_back(mode->sides[l]);
    stacked.push_back(torch::stack(rows));
  }
  return stacked;
}

std::vector<torch::Tensor> unsqueezed(const std::vector<torch::Tensor>& sides) {
  std::vector<torch::Tensor> out;
  for (const auto& side : sides) out.push_back(side.unsqueeze(0));
  return out;
}

bool contains(const std::vector<Kink>& kinks, const Kink& kink) {
  return std::find(kinks.begin(), kinks.end(), kink) != kinks.end();
}

void set_entry(torch::Tensor& layer, const Kink& kink, double value) {
  layer.select(0, kink.unit).select(0, kink.sample).fill_(value);
}

}  // namespace

KinkedField::KinkedField(const Ncf& ncf, double tolerance)
    : ncf_(ncf), tolerance_(tolerance), low_(ncf.options().activation().alpha()), high_(1.0) {}

KinkedField::Forward KinkedField::forward(const torch::Tensor& v,
                                          const std::vector<torch::Tensor>& sides) const {
  Forward f;
  f.weights = ncf_.layers(v);
  const auto layers = network_layers(f.weights, ncf_.options());
  auto hidden = torch::matmul(layers.front(), ncf_.inputs().t());
  for (size_t l = 1; l < layers.size(); ++l) {
    f.cache.preactivations.push_back(hidden);
    f.cache.activations.push_back(sides[l - 1] * hidden);
    hidden = torch::matmul(layers[l], f.cache.activations.back());
  }
  f.cache.outputs = hidden.squeeze(1);
  return f;
}

KinkedField::Forward KinkedField::member_forward(const Forward& all, int64_t a) const {
  Forward f;
  for (const auto& w : all.weights) f.weights.push_back(w.narrow(0, a, 1));
  for (const auto& z : all.cache.preactivations) {
    f.cache.preactivations.push_back(z.narrow(0, a, 1));
  }
  for (const auto& h : all.cache.activations) f.cache.activations.push_back(h.narrow(0, a, 1));
  f.cache.outputs = all.cache.outputs.narrow(0, a, 1);
  return f;
}

torch::Tensor KinkedField::gradients(const Forward& member,
                                     const std::vector<torch::Tensor>& slopes) const {
  const int64_t batch = slopes.front().size(0);
  return join_layers(feedforward_vjp(member.weights, ncf_.inputs(), ncf_.options(), member.cache,
                                     ncf_.ybar().expand({batch, -1}), slopes));
}

// Forward-mode derivative of the preactivations along the tangent part of each direction
// (the flow moves v by it): dz_1 = dW_1 Xᵀ, dz_l = dW_l a_{l−1} + W_l (slope ⊙ dz_{l−1}).
torch::Tensor KinkedField::rates(const Forward& member, const torch::Tensor& row,
                                 const torch::Tensor& directions,
                                 const std::vector<torch::Tensor>& sides,
                                 const std::vector<Kink>& sliding,
                                 const std::vector<Kink>& kinks) const {
  const auto radial = torch::matmul(directions, row) / row.dot(row);
  const auto tangent = directions - radial.unsqueeze(1) * row;
  const auto steps = split_layers(tangent, ncf_.layer_shapes());
  std::vector<torch::Tensor> pass = sides;
  for (const auto& kink : sliding) {
    auto& layer = pass[static_cast<size_t>(kink.layer)];
    if (layer.is_same(sides[static_cast<size_t>(kink.layer)])) layer = layer.clone();
    set_entry(layer, kink, 0.0);
  }
  std::vector<torch::Tensor> dz{torch::matmul(steps[0], ncf_.inputs().t())};
  for (int64_t l = 1; l < ncf_.hidden_layers(); ++l) {
    const auto u = static_cast<size_t>(l);
    dz.push_back(torch::matmul(steps[u], member.cache.activations[u - 1]) +
                 torch::matmul(member.weights[u], pass[u - 1] * dz[u - 1]));
  }
  std::vector<torch::Tensor> columns;
  for (const auto& kink : kinks) {
    columns.push_back(
        dz[static_cast<size_t>(kink.layer)].select(1, kink.unit).select(1, kink.sample));
  }
  return torch::stack(columns, 1);
}

// Filippov: the slopes s_b ∈ [α, 1] of the sliding kinks for which dz_b/ds = 0 for all of
// them. Newton on g(s) = rates; its columns g(s + e_b) − g(s) are exact because ∇N, and with
// it g, is affine in each single slope.
KinkedField::Sliding KinkedField::slide(const Forward& member, const torch::Tensor& row,
                                        const std::vector<torch::Tensor>& sides,
                                        const std::vector<Kink>& sliding,
                                        std::vector<double> start) const {
  Sliding out;
  const auto count = static_cast<int64_t>(sliding.size());
  if (count == 0) {
    out.gradient = gradients(member, unsqueezed(sides))[0];
    return out;
  }
  if (start.size() != sliding.size()) start.assign(sliding.size(), 0.5 * (low_ + high_));
  bool one_layer = true;
  for (const auto& kink : sliding) one_layer = one_layer && kink.layer == sliding.front().layer;
  auto slopes = torch::tensor(start, torch::kFloat64);
  const auto shifts = torch::cat({torch::zeros({1, count}, torch::kFloat64),
                                  torch::eye(count, torch::kFloat64)});  // [F + 1, F]
  const auto with = [&](const torch::Tensor& values) {  // values [B, F] → backward slopes
    std::vector<torch::Tensor> batch;
    for (const auto& side : sides) {
      batch.push_back(side.unsqueeze(0).expand({values.size(0), -1, -1}).clone());
    }
    const auto on_device = values.to(sides.front().options());
    for (int64_t b = 0; b < count; ++b) {
      const auto& kink = sliding[static_cast<size_t>(b)];
      batch[static_cast<size_t>(kink.layer)]
          .select(1, kink.unit)
          .select(1, kink.sample)
          .copy_(on_device.select(1, b));
    }
    return batch;
  };
  for (int step = 0; step < kNewtonSteps; ++step) {
    const auto grads = gradients(member, with(slopes.unsqueeze(0) + shifts));
    const auto g =
        rates(member, row, grads, sides, sliding, sliding).to(torch::kCPU, torch::kFloat64);
    const auto residual = g[0];
    const auto jacobian = (g.narrow(0, 1, count) - residual).t();  // [F, F]: ∂g_c/∂s_b
    const auto change = kink_detail::least_squares(jacobian, -residual);
    slopes = slopes + change;
    const double size = change.abs().max().item<double>();
    if (one_layer || !(size > 1e-14 * (1 + slopes.abs().max().item<double>()))) break;
  }
  out.gradient = gradients(member, with(slopes.unsqueeze(0)))[0];
  const auto host = slopes.contiguous();
  out.slopes.assign(host.data_ptr<double>(), host.data_ptr<double>() + count);
  return out;
}

double KinkedField::slope_margin(double slope) const {
  const double fraction = (slope - low_) / (high_ - low_);
  return std::min(fraction, 1 - fraction);
}

// The scale of each preactivation's margin: ‖W_l[j, :]‖·‖a_{l−1}[:, i]‖, per layer [k_l, n].
// A row that passes through zero, or a sample's input column that collapses (every unit
// below at its kink), flips the sign of z at once: below kCollapsed of their balanced size
// (‖v‖/√layers per layer) they stop scaling, so the margin passes through zero with z.
std::vector<torch::Tensor> KinkedField::margin_scales(const Forward& member) const {
  const double size = layer_size(member);
  const auto input_norms = ncf_.inputs().norm(2, 1);  // [n]
  std::vector<torch::Tensor> scales;
  for (int64_t l = 0; l < ncf_.hidden_layers(); ++l) {
    const auto u = static_cast<size_t>(l);
    const auto rows = member.weights[u][0].norm(2, 1).clamp_min(kCollapsed * size);
    auto columns = input_norms;
    if (l > 0) {
      columns = member.cache.activations[u - 1][0].norm(2, 0).max(
          kCollapsed * std::pow(size, static_cast<double>(l)) * input_norms);
    }
    scales.push_back(rows.unsqueeze(1) * columns.unsqueeze(0));
  }
  return scales;
}

double KinkedField::layer_size(const Forward& member) const {
  double total = 0;
  for (const auto& w : member.weights) total += w.square().sum().item<double>();
  return std::sqrt(total / static_cast<double>(member.weights.size()));
}

bool KinkedField::row_collapsed(const Forward& member, const Kink& kink) const {
  const double row =
      member.weights[static_cast<size_t>(kink.layer)][0][kink.unit].norm().item<double>();
  return row <= kCollapsed * layer_size(member);
}

std::vector<torch::Tensor> KinkedField::signed_margins(const Forward& member,
                                                       const KinkMode& mode) const {
  std::vector<torch::Tensor> margins;
  const double infinity = std::numeric_limits<double>::infinity();
  const auto scales = margin_scales(member);
  // Sliding kinks, and the preactivations of a sample whose whole input column comes from
  // sliding kinks (held at zero, so z is rounding there and moves with them), have no side
  // to leave: their slopes are the sliding slopes' business.
  std::vector<torch::Tensor> held;
  for (const auto& side : mode.sides) held.push_back(torch::zeros_like(side, torch::kBool));
  for (const auto& kink : mode.sliding) {
    held[static_cast<size_t>(kink.layer)].select(0, kink.unit).select(0, kink.sample).fill_(true);
  }
  for (int64_t l = 0; l < ncf_.hidden_layers(); ++l) {
    const auto u = static_cast<size_t>(l);
    if (l > 0) held[u] = held[u] | held[u - 1].all(0, /*keepdim=*/true);
    const auto sign = torch::where(mode.sides[u] == high_, torch::ones_like(scales[u]),
                                   -torch::ones_like(scales[u]));
    const auto margin = member.cache.preactivations[u][0] * sign / scales[u];
    // Removed units and all-zero input columns have no kinks.
    const auto rows = member.weights[u][0].norm(2, 1);
    const auto columns =
        l == 0 ? ncf_.inputs().norm(2, 1) : member.cache.activations[u - 1][0].norm(2, 0);
    const auto dead = (rows == 0).unsqueeze(1) | (columns == 0).unsqueeze(0) | held[u];
    margins.push_back(
        margin.masked_fill(dead, infinity).to(torch::kCPU, torch::kFloat64).contiguous());
  }
  return margins;
}

NcfEvaluation KinkedField::evaluate(const torch::Tensor& v,
                                    const std::vector<KinkMode*>& modes) const {
  const auto sides = stacked_sides(modes);
  const auto all = forward(v, sides);
  auto slopes = sides;
  bool copied = false;
  for (size_t a = 0; a < modes.size(); ++a) {
    auto& mode = *modes[a];
    if (mode.sliding.empty()) continue;
    if (!copied) {
      for (auto& layer : slopes) layer = layer.clone();
      copied = true;
    }
    const auto i = static_cast<int64_t>(a);
    const auto solution =
        slide(member_forward(all, i), v[i], mode.sides, mode.sliding, mode.slopes);
    mode.slopes = solution.slopes;
    for (size_t b = 0; b < mode.sliding.size(); ++b) {
      auto layer = slopes[static_cast<size_t>(mode.sliding[b].layer)][i];
      set_entry(layer, mode.sliding[b], solution.slopes[b]);
    }
  }
  const auto grads = feedforward_vjp(all.weights, ncf_.inputs(), ncf_.options(), all.cache,
                                     ncf_.ybar().expand({v.size(0), -1}), slopes);
  return {(all.cache.outputs * ncf_.ybar()).sum(-1), join_layers(grads)};
}

KinkMode KinkedField::initial_mode(const torch::Tensor& row) const {
  KinkMode mode;
  const auto cache =
      feedforward_forward(ncf_.layers(row.unsqueeze(0)), ncf_.inputs(), ncf_.options());
  for (const auto& z : cache.preactivations) {
    mode.sides.push_back(poly_leaky_relu_derivative(z[0], ncf_.options().activation()));
  }
  // Preactivations within the tolerance of their kink, on either side, are settled.
  const auto margins = signed_margins(forward(row.unsqueeze(0), unsqueezed(mode.sides)), mode);
  std::vector<Kink> near;
  for (size_t l = 0; l < margins.size(); ++l) {
    const auto where = torch::nonzero(margins[l].abs() <= tolerance_);
    const auto at = where.accessor<int64_t, 2>();
    for (int64_t r = 0; r < where.size(0); ++r) {
      near.push_back({static_cast<int64_t>(l), at[r][0], at[r][1]});
    }
  }
  settle(row, mode, near);
  return mode;
}

std::vector<std::vector<Departure>> KinkedField::departures(
    const torch::Tensor& v, const std::vector<KinkMode*>& modes) const {
  const auto all = forward(v, stacked_sides(modes));
  std::vector<std::vector<Departure>> out(modes.size());
  for (size_t a = 0; a < modes.size(); ++a) {
    const auto i = static_cast<int64_t>(a);
    const auto member = member_forward(all, i);
    const auto& mode = *modes[a];
    const auto margins = signed_margins(member, mode);
    for (size_t l = 0; l < margins.size(); ++l) {
      const auto where = torch::nonzero(margins[l] < tolerance_);
      const auto at = where.accessor<int64_t, 2>();
      const auto values = margins[l].accessor<double, 2>();
      for (int64_t r = 0; r < where.size(0); ++r) {
        out[a].push_back(
            {{static_cast<int64_t>(l), at[r][0], at[r][1]}, values[at[r][0]][at[r][1]]});
      }
    }
    if (mode.sliding.empty()) continue;
    const auto solution = slide(member, v[i], mode.sides, mode.sliding, mode.slopes);
    for (size_t b = 0; b < mode.sliding.size(); ++b) {
      const double margin = slope_margin(solution.slopes[b]);
      if (margin < tolerance_) out[a].push_back({mode.sliding[b], margin});
    }
  }
  return out;
}

std::vector<double> KinkedField::margins(const torch::Tensor& row, const KinkMode& mode,
                                         const std::vector<Kink>& kinks) const {
  const auto member = forward(row.unsqueeze(0), unsqueezed(mode.sides));
  const auto signed_ = signed_margins(member, mode);
  // The sliding slopes cost a Newton solve: only when a sliding kink is asked for.
  const bool any_sliding = std::any_of(
      kinks.begin(), kinks.end(), [&](const Kink& kink) { return contains(mode.sliding, kink); });
  std::vector<double> slopes;
  if (any_sliding) slopes = slide(member, row, mode.sides, mode.sliding, mode.slopes).slopes;
  std::vector<double> out;
  for (const auto& kink : kinks) {
    const auto at = std::find(mode.sliding.begin(), mode.sliding.end(), kink);
    if (at != mode.sliding.end()) {
      out.push_back(slope_margin(slopes[static_cast<size_t>(at - mode.sliding.begin())]));
    } else {
      out.push_back(
          signed_[static_cast<size_t>(kink.layer)][kink.unit][kink.sample].item<double>());
    }
  }
  return out;
}

// dz/ds of `kink` with its slope set to `slope` (the sliding kinks re-solved), as the rate of
// its margin per unit of angle û moves: comparable with the tolerance.
double KinkedField::side_rate(const Forward& member, const torch::Tensor& row, const KinkMode& mode,
                              const Kink& kink, double slope) const {
  auto sides = mode.sides;
  auto& layer = sides[static_cast<size_t>(kink.layer)];
  layer = layer.clone();
  set_entry(layer, kink, slope);
  const auto solution = slide(member, row, sides, mode.sliding, mode.slopes);
  const double rate =
      rates(member, row, solution.gradient.unsqueeze(0), sides, mode.sliding, {kink})
          .item<double>();
  const auto& g = solution.gradient;
  const double speed =
      (g - g.dot(row) / row.dot(row) * row).norm().item<double>() / row.norm().item<double>();
  const double scale =
      margin_scales(member)[static_cast<size_t>(kink.layer)][kink.unit][kink.sample].item<double>();
  return speed > 0 ? rate / (scale * speed) : 0.0;
}

Settling KinkedField::settle(const torch::Tensor& row, KinkMode& mode,
                             const std::vector<Kink>& kinks) const {
  Settling result;
  // Lowest layer first: a kink's side can flip the sign of the preactivations above it.
  std::vector<Kink> pending = kinks;
  std::stable_sort(pending.begin(), pending.end(),
                   [](const Kink& a, const Kink& b) { return a.layer > b.layer; });
  // Sliding kinks among `kinks` are decided afresh, like the others.
  std::vector<Kink> released;
  {
    std::vector<Kink> sliding;
    std::vector<double> slopes;
    for (size_t b = 0; b < mode.sliding.size(); ++b) {
      if (contains(kinks, mode.sliding[b])) {
        released.push_back(mode.sliding[b]);
      } else {
        sliding.push_back(mode.sliding[b]);
        slopes.push_back(b < mode.slopes.size() ? mode.slopes[b] : 0.5 * (low_ + high_));
      }
    }
    mode.sliding = sliding;
    mode.slopes = slopes;
  }
  // Each round settles one kink (or the sliding slopes); exits can add rounds, so bound them.
  const size_t rounds = 2 * kinks.size() + 2 * mode.sliding.size() + 8;
  for (size_t round = 0; round < rounds; ++round) {
    const auto member = forward(row.unsqueeze(0), unsqueezed(mode.sides));
    // Sliding kinks whose slope left [α, 1] leave to the side it left by.
    const auto solution = slide(member, row, mode.sides, mode.sliding, mode.slopes);
    bool exited = false;
    std::vector<Kink> sliding;
    std::vector<double> slopes;
    for (size_t b = 0; b < mode.sliding.size(); ++b) {
      const double slope = solution.slopes[b];
      if (slope_margin(slope) < 0) {
        set_entry(mode.sides[static_cast<size_t>(mode.sliding[b].layer)], mode.sliding[b],
                  slope > high_ ? high_ : low_);
        ++result.exits;
        exited = true;
      } else {
        sliding.push_back(mode.sliding[b]);
        slopes.push_back(slope);
      }
    }
    mode.sliding = sliding;
    mode.slopes = slopes;
    if (exited) {
      result.changed = true;
      continue;
    }
    if (pending.empty()) break;
    const Kink kink = pending.back();
    pending.pop_back();
    if (contains(mode.sliding, kink)) continue;
    // The field on each side of the kink: both push z up, or both down (z takes that side),
    // or towards each other (slide along the kink at the slope where dz/ds = 0). Pushing
    // apart, z keeps its side, and a kink that slid keeps sliding.
    // A rate within the tolerance is no push at all (a kink whose input column collapsed onto
    // kinks that slide below it moves with them).
    const auto push = [&](double rate) { return std::abs(rate) <= tolerance_ ? 0.0 : rate; };
    const double below = push(side_rate(member, row, mode, kink, low_));
    const double above = push(side_rate(member, row, mode, kink, high_));
    const bool was_sliding = contains(released, kink);
    // No push either way at a unit whose row has collapsed (it dies away): z keeps the side
    // it is on. (Elsewhere no push keeps the side: a kink above sliding kinks moves with them.)
    const bool drifting = below == 0 && above == 0 && !was_sliding && row_collapsed(member, kink);
    const double z =
        member.cache.preactivations[static_cast<size_t>(kink.layer)][0][kink.unit][kink.sample]
            .item<double>();
    const bool up = (below > 0 && above > 0) || (drifting && z > 0);
    const bool down = (below < 0 && above < 0) || (drifting && z < 0);
    if ((below > 0 && above < 0) || (was_sliding && !up && !down)) {
      mode.sliding.push_back(kink);
      mode.slopes.push_back(below != above ? low_ + (high_ - low_) * below / (below - above)
                                           : 0.5 * (low_ + high_));
      if (!was_sliding) {
        ++result.entries;
        result.changed = true;
      }
      continue;
    }
    auto& side = mode.sides[static_cast<size_t>(kink.layer)];
    const double current = side[kink.unit][kink.sample].item<double>();
    const double next = up ? high_ : down ? low_ : current;
    if (was_sliding) {
      ++result.exits;
      result.changed = true;
    } else if (next != current) {
      ++result.crossings;
      result.changed = true;
    }
    set_entry(side, kink, next);
  }
  return result;
}

}  // namespace ncflab::flow_detail
