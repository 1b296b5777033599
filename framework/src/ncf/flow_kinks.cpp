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

bool contains(const std::vector<Kink>& kinks, const Kink& kink) {
  return std::find(kinks.begin(), kinks.end(), kink) != kinks.end();
}

double dot(const double* a, const double* b, int64_t size) {
  double sum = 0;
  for (int64_t i = 0; i < size; ++i) sum += a[i] * b[i];
  return sum;
}

// The part of `direction` orthogonal to `row`, [P].
std::vector<double> tangent_part(const double* direction, const double* row, int64_t size) {
  const double radial = dot(direction, row, size) / dot(row, row, size);
  std::vector<double> out(static_cast<size_t>(size));
  for (int64_t i = 0; i < size; ++i) out[static_cast<size_t>(i)] = direction[i] - radial * row[i];
  return out;
}

// Per hidden layer, the members' values stacked into [A, k_l, n] with `options` (device path).
std::vector<torch::Tensor> stacked(const std::vector<UnitSamples>& per_member,
                                   const std::vector<int64_t>& widths, int64_t samples,
                                   const torch::TensorOptions& options) {
  std::vector<torch::Tensor> out;
  const auto members = static_cast<int64_t>(per_member.size());
  for (size_t l = 0; l < widths.size(); ++l) {
    auto layer = torch::empty({members, widths[l], samples}, torch::kFloat64);
    for (int64_t a = 0; a < members; ++a) {
      const auto& values = per_member[static_cast<size_t>(a)][l];
      std::copy(values.begin(), values.end(), layer[a].data_ptr<double>());
    }
    out.push_back(layer.to(options));
  }
  return out;
}

}  // namespace

KinkedField::KinkedField(const Ncf& ncf, const HostNet& net, double tolerance)
    : ncf_(ncf),
      net_(net),
      tolerance_(tolerance),
      low_(ncf.options().activation().alpha()),
      high_(1.0) {}

KinkedField::Forward KinkedField::forward(const double* row, const UnitSamples& sides) const {
  Forward f;
  f.row = row;
  net_.forward(row, &sides, f.pass);
  return f;
}

std::vector<double> KinkedField::gradient(const Forward& member, const UnitSamples& slopes) const {
  std::vector<double> out(static_cast<size_t>(net_.parameters()));
  net_.gradient(member.row, member.pass, slopes, out.data());
  return out;
}

// Forward-mode derivative of the preactivations along the tangent part of the direction
// (the flow moves v by it): dz_1 = dW_1 Xᵀ, dz_l = dW_l a_{l−1} + W_l (slope ⊙ dz_{l−1}).
std::vector<double> KinkedField::rates(const Forward& member, const std::vector<double>& direction,
                                       const UnitSamples& sides, const std::vector<Kink>& sliding,
                                       const std::vector<Kink>& kinks) const {
  const auto step = tangent_part(direction.data(), member.row, net_.parameters());
  UnitSamples pass = sides;
  for (const auto& kink : sliding) pass[static_cast<size_t>(kink.layer)][entry(kink)] = 0.0;
  std::vector<double> out;
  for (const auto& kink : kinks) {
    out.push_back(net_.rate(member.row, member.pass, step.data(), pass,
                            static_cast<size_t>(kink.layer), kink.unit, kink.sample));
  }
  return out;
}

// Filippov: the slopes s_b ∈ [α, 1] of the sliding kinks for which dz_b/ds = 0 for all of
// them. Newton on g(s) = rates; its columns g(s + e_b) − g(s) are exact because ∇N, and with
// it g, is affine in each single slope.
KinkedField::Sliding KinkedField::slide(const Forward& member, const UnitSamples& sides,
                                        const std::vector<Kink>& sliding,
                                        std::vector<double> start) const {
  Sliding out;
  const size_t count = sliding.size();
  if (count == 0) {
    out.gradient = gradient(member, sides);
    return out;
  }
  if (start.size() != count) start.assign(count, 0.5 * (low_ + high_));
  bool one_layer = true;
  for (const auto& kink : sliding) one_layer = one_layer && kink.layer == sliding.front().layer;
  auto slopes = std::move(start);
  const auto with = [&](const std::vector<double>& values) {
    UnitSamples out_slopes = sides;
    for (size_t b = 0; b < count; ++b) {
      out_slopes[static_cast<size_t>(sliding[b].layer)][entry(sliding[b])] = values[b];
    }
    return out_slopes;
  };
  const auto size = static_cast<int64_t>(count);
  for (int step = 0; step < kNewtonSteps; ++step) {
    // g at s and at s + e_b for every b: the residual and the Jacobian's columns.
    const auto residual = rates(member, gradient(member, with(slopes)), sides, sliding, sliding);
    auto jacobian = torch::empty({size, size}, torch::kFloat64);  // ∂g_c/∂s_b
    auto shifted = slopes;
    for (size_t b = 0; b < count; ++b) {
      shifted[b] += 1.0;
      const auto g = rates(member, gradient(member, with(shifted)), sides, sliding, sliding);
      shifted[b] = slopes[b];
      for (size_t c = 0; c < count; ++c) {
        jacobian[static_cast<int64_t>(c)][static_cast<int64_t>(b)] = g[c] - residual[c];
      }
    }
    auto target = torch::empty({size}, torch::kFloat64);
    for (size_t c = 0; c < count; ++c) target[static_cast<int64_t>(c)] = -residual[c];
    const auto change = kink_detail::least_squares(jacobian, target).contiguous();
    double largest_change = 0;
    double largest_slope = 0;
    for (size_t b = 0; b < count; ++b) {
      slopes[b] += change.data_ptr<double>()[b];
      largest_change = std::max(largest_change, std::abs(change.data_ptr<double>()[b]));
      largest_slope = std::max(largest_slope, std::abs(slopes[b]));
    }
    if (one_layer || !(largest_change > 1e-14 * (1 + largest_slope))) break;
  }
  out.gradient = gradient(member, with(slopes));
  out.slopes = std::move(slopes);
  return out;
}

double KinkedField::slope_margin(double slope) const {
  const double fraction = (slope - low_) / (high_ - low_);
  return std::min(fraction, 1 - fraction);
}

double KinkedField::layer_size(const Forward& member) const {
  const double total = dot(member.row, member.row, net_.parameters());
  return std::sqrt(total / static_cast<double>(ncf_.layer_shapes().size()));
}

double KinkedField::row_norm(const Forward& member, const Kink& kink) const {
  const auto layer = static_cast<size_t>(kink.layer);
  const int64_t fan_in = net_.fan_in(layer);
  const double* w = net_.weights(member.row, layer) + kink.unit * fan_in;
  return std::sqrt(dot(w, w, fan_in));
}

double KinkedField::column_norm(const Forward& member, const Kink& kink) const {
  if (kink.layer == 0) return net_.input_norms()[static_cast<size_t>(kink.sample)];
  const auto below = static_cast<size_t>(kink.layer - 1);
  const auto& a = member.pass.activations[below];
  double total = 0;
  for (int64_t c = 0; c < net_.width(below); ++c) {
    const double value = a[static_cast<size_t>(c * net_.samples() + kink.sample)];
    total += value * value;
  }
  return std::sqrt(total);
}

// The scale of a preactivation's margin: ‖W_l[j, :]‖·‖a_{l−1}[:, i]‖ (`row`, `column`). A row
// that passes through zero, or a sample's input column that collapses (every unit below at its
// kink), flips the sign of z at once: below kCollapsed of their balanced size (‖v‖/√layers per
// layer) they stop scaling, so the margin passes through zero with z.
double KinkedField::margin_scale(double size, const Kink& kink, double row, double column) const {
  const double input = net_.input_norms()[static_cast<size_t>(kink.sample)];
  return std::max(row, kCollapsed * size) *
         (kink.layer == 0
              ? input
              : std::max(column,
                         kCollapsed * std::pow(size, static_cast<double>(kink.layer)) * input));
}

bool KinkedField::row_collapsed(const Forward& member, const Kink& kink) const {
  return row_norm(member, kink) <= kCollapsed * layer_size(member);
}

// Sliding kinks, and the preactivations of a sample whose whole input column comes from
// sliding kinks (held at zero, so z is rounding there and moves with them), have no side
// to leave: their slopes are the sliding slopes' business. Empty without sliding kinks.
std::vector<std::vector<bool>> KinkedField::held(const KinkMode& mode) const {
  std::vector<std::vector<bool>> out;
  if (mode.sliding.empty()) return out;
  const int64_t n = net_.samples();
  for (size_t l = 0; l < net_.hidden_layers(); ++l) {
    out.emplace_back(static_cast<size_t>(net_.width(l) * n), false);
  }
  for (const auto& kink : mode.sliding) out[static_cast<size_t>(kink.layer)][entry(kink)] = true;
  for (size_t l = 1; l < out.size(); ++l) {
    for (int64_t i = 0; i < n; ++i) {
      bool all = true;
      for (int64_t c = 0; c < net_.width(l - 1) && all; ++c) {
        all = out[l - 1][static_cast<size_t>(c * n + i)];
      }
      if (!all) continue;
      for (int64_t j = 0; j < net_.width(l); ++j) out[l][static_cast<size_t>(j * n + i)] = true;
    }
  }
  return out;
}

double KinkedField::signed_margin(const Forward& member, const KinkMode& mode,
                                  const std::vector<std::vector<bool>>& held, double size,
                                  const Kink& kink, double row, double column) const {
  const auto layer = static_cast<size_t>(kink.layer);
  // Removed units and all-zero input columns have no kinks.
  if (row == 0 || column == 0 || (!held.empty() && held[layer][entry(kink)])) {
    return std::numeric_limits<double>::infinity();
  }
  const double sign = mode.sides[layer][entry(kink)] == high_ ? 1.0 : -1.0;
  return member.pass.preactivations[layer][entry(kink)] * sign /
         margin_scale(size, kink, row, column);
}

double KinkedField::evaluate(const double* row, KinkMode& mode, double* gradient) const {
  const auto member = forward(row, mode.sides);
  if (mode.sliding.empty()) {
    net_.gradient(row, member.pass, mode.sides, gradient);
  } else {
    auto solution = slide(member, mode.sides, mode.sliding, mode.slopes);
    mode.slopes = std::move(solution.slopes);
    std::copy(solution.gradient.begin(), solution.gradient.end(), gradient);
  }
  return net_.value(member.pass);
}

// The mode's polynomial batched on the rows' device; the sliding slopes are solved on the host.
NcfEvaluation KinkedField::evaluate(const torch::Tensor& v,
                                    const std::vector<KinkMode*>& modes) const {
  // The rows come to the host only when a member slides (a Newton solve there).
  const bool sliding = std::any_of(modes.begin(), modes.end(),
                                   [](const KinkMode* mode) { return !mode->sliding.empty(); });
  const auto host = sliding ? v.detach().to(torch::kCPU, torch::kFloat64).contiguous() : v;
  std::vector<UnitSamples> sides;
  std::vector<UnitSamples> slopes;
  for (size_t a = 0; a < modes.size(); ++a) {
    auto& mode = *modes[a];
    sides.push_back(mode.sides);
    slopes.push_back(mode.sides);
    if (mode.sliding.empty()) continue;
    const double* row = host.data_ptr<double>() + static_cast<int64_t>(a) * host.size(1);
    mode.slopes = slide(forward(row, mode.sides), mode.sides, mode.sliding, mode.slopes).slopes;
    for (size_t b = 0; b < mode.sliding.size(); ++b) {
      slopes.back()[static_cast<size_t>(mode.sliding[b].layer)][entry(mode.sliding[b])] =
          mode.slopes[b];
    }
  }
  std::vector<int64_t> widths;
  for (size_t l = 0; l < net_.hidden_layers(); ++l) widths.push_back(net_.width(l));
  const auto side_tensors = stacked(sides, widths, net_.samples(), v.options());
  const auto slope_tensors = stacked(slopes, widths, net_.samples(), v.options());
  const auto weights = ncf_.layers(v);
  const auto layers = network_layers(weights, ncf_.options());
  FeedForwardCache cache;
  auto hidden = torch::matmul(layers.front(), ncf_.inputs().t());
  for (size_t l = 1; l < layers.size(); ++l) {
    cache.preactivations.push_back(hidden);
    cache.activations.push_back(side_tensors[l - 1] * hidden);
    hidden = torch::matmul(layers[l], cache.activations.back());
  }
  cache.outputs = hidden.squeeze(1);
  const auto grads = feedforward_vjp(weights, ncf_.inputs(), ncf_.options(), cache,
                                     ncf_.ybar().expand({v.size(0), -1}), slope_tensors);
  return {(cache.outputs * ncf_.ybar()).sum(-1), join_layers(grads)};
}

KinkMode KinkedField::initial_mode(const double* row) const {
  KinkMode mode;
  HostPass pass;
  net_.forward(row, nullptr, pass);
  mode.sides = net_.derivatives(pass);
  // Preactivations within the tolerance of their kink, on either side, are settled.
  const auto member = forward(row, mode.sides);
  const double size = layer_size(member);
  std::vector<Kink> near;
  for (size_t l = 0; l < net_.hidden_layers(); ++l) {
    for (int64_t j = 0; j < net_.width(l); ++j) {
      for (int64_t i = 0; i < net_.samples(); ++i) {
        const Kink kink{static_cast<int64_t>(l), j, i};
        const double margin = signed_margin(member, mode, {}, size, kink, row_norm(member, kink),
                                            column_norm(member, kink));
        if (std::abs(margin) <= tolerance_) {
          near.push_back(kink);
        }
      }
    }
  }
  settle(row, mode, near);
  return mode;
}

std::vector<Departure> KinkedField::departures(const double* row, const KinkMode& mode) const {
  const auto member = forward(row, mode.sides);
  const auto held_kinks = held(mode);
  const double size = layer_size(member);
  std::vector<Departure> out;
  for (size_t l = 0; l < net_.hidden_layers(); ++l) {
    // The norms every margin of the layer divides by, once.
    std::vector<double> rows;
    std::vector<double> columns;
    for (int64_t j = 0; j < net_.width(l); ++j) {
      rows.push_back(row_norm(member, {static_cast<int64_t>(l), j, 0}));
    }
    for (int64_t i = 0; i < net_.samples(); ++i) {
      columns.push_back(column_norm(member, {static_cast<int64_t>(l), 0, i}));
    }
    for (int64_t j = 0; j < net_.width(l); ++j) {
      for (int64_t i = 0; i < net_.samples(); ++i) {
        const Kink kink{static_cast<int64_t>(l), j, i};
        const double margin =
            signed_margin(member, mode, held_kinks, size, kink, rows[static_cast<size_t>(j)],
                          columns[static_cast<size_t>(i)]);
        if (margin < tolerance_) out.push_back({kink, margin});
      }
    }
  }
  if (mode.sliding.empty()) return out;
  const auto solution = slide(member, mode.sides, mode.sliding, mode.slopes);
  for (size_t b = 0; b < mode.sliding.size(); ++b) {
    const double margin = slope_margin(solution.slopes[b]);
    if (margin < tolerance_) out.push_back({mode.sliding[b], margin});
  }
  return out;
}

std::vector<double> KinkedField::margins(const double* row, const KinkMode& mode,
                                         const std::vector<Kink>& kinks) const {
  const auto member = forward(row, mode.sides);
  const auto held_kinks = held(mode);
  const double size = layer_size(member);
  // The sliding slopes cost a Newton solve: only when a sliding kink is asked for.
  const bool any_sliding = std::any_of(
      kinks.begin(), kinks.end(), [&](const Kink& kink) { return contains(mode.sliding, kink); });
  std::vector<double> slopes;
  if (any_sliding) slopes = slide(member, mode.sides, mode.sliding, mode.slopes).slopes;
  std::vector<double> out;
  for (const auto& kink : kinks) {
    const auto at = std::find(mode.sliding.begin(), mode.sliding.end(), kink);
    if (at != mode.sliding.end()) {
      out.push_back(slope_margin(slopes[static_cast<size_t>(at - mode.sliding.begin())]));
    } else {
      out.push_back(signed_margin(member, mode, held_kinks, size, kink, row_norm(member, kink),
                                  column_norm(member, kink)));
    }
  }
  return out;
}

// dz/ds of `kink` with its slope set to `slope` (the sliding kinks re-solved), as the rate of
// its margin per unit of angle û moves: comparable with the tolerance.
double KinkedField::side_rate(const Forward& member, const KinkMode& mode, const Kink& kink,
                              double slope) const {
  auto sides = mode.sides;
  sides[static_cast<size_t>(kink.layer)][entry(kink)] = slope;
  const auto solution = slide(member, sides, mode.sliding, mode.slopes);
  const double rate = rates(member, solution.gradient, sides, mode.sliding, {kink}).front();
  const int64_t size = net_.parameters();
  const auto tangent = tangent_part(solution.gradient.data(), member.row, size);
  const double speed = std::sqrt(dot(tangent.data(), tangent.data(), size)) /
                       std::sqrt(dot(member.row, member.row, size));
  const double scale =
      margin_scale(layer_size(member), kink, row_norm(member, kink), column_norm(member, kink));
  return speed > 0 ? rate / (scale * speed) : 0.0;
}

Settling KinkedField::settle(const double* row, KinkMode& mode,
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
    const auto member = forward(row, mode.sides);
    // Sliding kinks whose slope left [α, 1] leave to the side it left by.
    bool exited = false;
    if (!mode.sliding.empty()) {
      const auto solution = slide(member, mode.sides, mode.sliding, mode.slopes);
      std::vector<Kink> sliding;
      std::vector<double> slopes;
      for (size_t b = 0; b < mode.sliding.size(); ++b) {
        const double slope = solution.slopes[b];
        if (slope_margin(slope) < 0) {
          mode.sides[static_cast<size_t>(mode.sliding[b].layer)][entry(mode.sliding[b])] =
              slope > high_ ? high_ : low_;
          ++result.exits;
          exited = true;
        } else {
          sliding.push_back(mode.sliding[b]);
          slopes.push_back(slope);
        }
      }
      mode.sliding = sliding;
      mode.slopes = slopes;
    }
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
    const double below = push(side_rate(member, mode, kink, low_));
    const double above = push(side_rate(member, mode, kink, high_));
    const bool was_sliding = contains(released, kink);
    // No push either way at a unit whose row has collapsed (it dies away): z keeps the side
    // it is on. (Elsewhere no push keeps the side: a kink above sliding kinks moves with them.)
    const bool drifting = below == 0 && above == 0 && !was_sliding && row_collapsed(member, kink);
    const double z = member.pass.preactivations[static_cast<size_t>(kink.layer)][entry(kink)];
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
    double& side = mode.sides[static_cast<size_t>(kink.layer)][entry(kink)];
    const double current = side;
    const double next = up ? high_ : down ? low_ : current;
    if (was_sliding) {
      ++result.exits;
      result.changed = true;
    } else if (next != current) {
      ++result.crossings;
      result.changed = true;
    }
    side = next;
  }
  return result;
}

}  // namespace ncflab::flow_detail
