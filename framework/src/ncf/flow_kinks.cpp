// The NCF flow's field in a mode of a net with kinks (flow_kinks.h): the mode's polynomial
// and the Filippov slopes of the kinks it slides along, on the host row by row or batched
// on a device. Margins and the new mode at a kink: flow_kink_modes.cpp.
#include "flow_kinks.h"

#include <algorithm>

#include "kink_newton_solver.h"

namespace ncflab::flow_detail {
namespace {

// Newton steps for the sliding slopes: one is exact when the sliding kinks sit in one layer
// (∇N is affine in one layer's slopes); several layers make the problem multilinear.
constexpr int kNewtonSteps = 30;

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

}  // namespace ncflab::flow_detail
