// The modes of the NCF flow on nets with kinks (flow_kinks.h): each preactivation's margin to
// its kink, where a point has left its mode, and the new mode at a kink (Filippov).
#include <algorithm>
#include <cmath>
#include <limits>

#include "flow_kinks.h"

namespace ncflab::flow_detail {
namespace {

// A row of W_l, or a sample's input column to it, has collapsed when its norm is below this
// fraction of its size in a balanced net (‖v‖/√layers per layer): z's sign then flips with
// the row or with the kinks below, and its margin says nothing about a distance to the kink.
constexpr double kCollapsed = 1e-6;

bool contains(const std::vector<Kink>& kinks, const Kink& kink) {
  return std::find(kinks.begin(), kinks.end(), kink) != kinks.end();
}

}  // namespace

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
