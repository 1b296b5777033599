// The KKT search: spectral (Barzilai–Borwein) projected gradient ascent on the sphere,
// batched over all starts, then for p = 1 a per-start active-set Newton method on the kink
// manifold (kink_newton.h), then merging of starts that found the same point up to a
// permutation of hidden units.
#include "ncflab/ncf/kkt.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "ncflab/core/signals.h"
#include "ncflab/ncf/kink_newton.h"

namespace ncflab {
namespace {

constexpr double kArmijo = 1e-4;
// Relative rounding of N: below it, function values cannot tell progress apart.
constexpr double kValueRounding = 64 * std::numeric_limits<double>::epsilon();
// p = 1: a start whose N rose by less than this (relative) over kStallWindow iterations has
// stalled at a kink, where the smooth ascent makes no further progress; Newton takes over.
constexpr double kStallRise = 1e-9;
constexpr int64_t kStallWindow = 200;
// p = 1: Newton iterations per start (at most); a few dozen suffice in practice.
constexpr int64_t kNewtonIterations = 300;

torch::Tensor tangent_of(const torch::Tensor& gradient, const torch::Tensor& unit) {
  return gradient - (gradient * unit).sum(-1, /*keepdim=*/true) * unit;
}

// Accept a step when N rose enough (Armijo), or when the rise is below rounding and the
// tangent shrank: near a maximum N changes by O(residual²), under float64 resolution.
torch::Tensor acceptable(const torch::Tensor& value, const torch::Tensor& candidate_value,
                         const torch::Tensor& step, const torch::Tensor& tangent_sq,
                         const torch::Tensor& candidate_tangent_sq) {
  const auto armijo = candidate_value >= value + kArmijo * step * tangent_sq;
  const auto flat = (candidate_value >= value - kValueRounding * value.abs()) &
                    (candidate_tangent_sq < tangent_sq);
  return armijo | flat;
}

struct StartState {
  torch::Tensor u;           // [R, P] unit rows
  torch::Tensor iterations;  // [R] int64
};

// Phase 1: all starts together, smooth projected gradient with BB steps.
// With `detect_stall` a start also stops once N stops rising (kStallRise per kStallWindow).
StartState smooth_ascent(const Ncf& ncf, torch::Tensor u, const KktSearchOptions& options,
                         int64_t max_iterations, bool detect_stall,
                         const std::function<void(const KktProgress&)>& progress) {
  const int64_t restarts = u.size(0);
  auto eval = ncf.evaluate(u);
  auto tangent = tangent_of(eval.gradient, u);
  auto tangent_sq = tangent.square().sum(-1);
  auto step = torch::full({restarts}, 0.1, u.options());
  auto active = torch::ones({restarts}, torch::kBool).to(u.device());
  auto iterations = torch::zeros({restarts}, torch::kLong).to(u.device());
  auto window_start = eval.value.clone();
  for (int64_t iteration = 0; iteration < max_iterations; ++iteration) {
    stop_if_interrupted("the KKT search");
    const auto residual = tangent_sq.sqrt() / eval.gradient.norm(2, -1).clamp_min(1e-300);
    active = active & (residual >= options.tol()) & (step > 1e-30);
    if (detect_stall && iteration > 0 && iteration % kStallWindow == 0) {
      active = active & (eval.value - window_start > kStallRise * eval.value.abs());
      window_start = eval.value.clone();
    }
    if (!active.any().item<bool>()) break;
    const auto candidate = unit_rows(u + step.unsqueeze(1) * tangent);
    const auto candidate_eval = ncf.evaluate(candidate);
    const auto candidate_tangent = tangent_of(candidate_eval.gradient, candidate);
    const auto candidate_tangent_sq = candidate_tangent.square().sum(-1);
    const auto accept = active & acceptable(eval.value, candidate_eval.value, step, tangent_sq,
                                            candidate_tangent_sq);
    // Barzilai–Borwein: step = ⟨s,s⟩/|⟨s,y⟩| with s the move and y the change of the tangent.
    const auto s = candidate - u;
    const auto y = candidate_tangent - tangent;
    const auto bb =
        (s.square().sum(-1) / (s * y).sum(-1).abs().clamp_min(1e-300)).clamp(1e-12, 1e12);
    const auto a = accept.unsqueeze(1);
    u = torch::where(a, candidate, u);
    eval.value = torch::where(accept, candidate_eval.value, eval.value);
    eval.gradient = torch::where(a, candidate_eval.gradient, eval.gradient);
    tangent = torch::where(a, candidate_tangent, tangent);
    tangent_sq = torch::where(accept, candidate_tangent_sq, tangent_sq);
    step = torch::where(accept, bb, torch::where(active, step * 0.3, step));
    iterations += active.to(torch::kLong);
    if (progress && iteration % 500 == 0) {
      progress({iteration, active.sum().item<int64_t>(), eval.value.max().item<double>()});
    }
  }
  return {u, iterations};
}

}  // namespace

bool same_up_to_permutation(const Ncf& ncf, const torch::Tensor& a, const torch::Tensor& b,
                            double tol) {
  // A single-layer model's fixed output row of ones comes along: its columns are equal,
  // so only the incoming rows decide, and it adds nothing to the distance.
  const auto la = network_layers(ncf.layers(a.unsqueeze(0)), ncf.options());
  const auto lb = network_layers(ncf.layers(b.unsqueeze(0)), ncf.options());
  std::vector<torch::Tensor> first;
  std::vector<torch::Tensor> second;
  for (size_t l = 0; l < la.size(); ++l) {
    first.push_back(la[l][0]);
    second.push_back(lb[l][0].clone());
  }
  // Match the hidden units of `b` to those of `a` layer by layer (greedy nearest rows;
  // the outgoing weights break ties between equal incoming rows).
  for (size_t h = 0; h + 1 < first.size(); ++h) {
    const int64_t units = first[h].size(0);
    const auto incoming = torch::cdist(first[h].unsqueeze(0), second[h].unsqueeze(0))[0];
    const auto sorted_a = std::get<0>(first[h + 1].t().sort(1));
    const auto sorted_b = std::get<0>(second[h + 1].t().sort(1));
    const auto outgoing = torch::cdist(sorted_a.unsqueeze(0), sorted_b.unsqueeze(0))[0];
    const auto cost = incoming + outgoing;
    std::vector<bool> used(static_cast<size_t>(units), false);
    std::vector<int64_t> order;
    for (int64_t j = 0; j < units; ++j) {
      int64_t best = -1;
      double best_cost = std::numeric_limits<double>::infinity();
      for (int64_t k = 0; k < units; ++k) {
        const double c = cost[j][k].item<double>();
        if (!used[static_cast<size_t>(k)] && c < best_cost) {
          best_cost = c;
          best = k;
        }
      }
      used[static_cast<size_t>(best)] = true;
      order.push_back(best);
    }
    const auto permutation = torch::tensor(order, torch::kLong).to(second[h].device());
    second[h] = second[h].index_select(0, permutation);
    second[h + 1] = second[h + 1].index_select(1, permutation);
  }
  double distance_sq = 0;
  for (size_t l = 0; l < first.size(); ++l) {
    distance_sq += (first[l] - second[l]).square().sum().item<double>();
  }
  return std::sqrt(distance_sq) < tol;
}

KktSearchResult search_kkt_points(const Ncf& ncf, const KktSearchOptions& options,
                                  const std::function<void(const KktProgress&)>& progress) {
  TORCH_CHECK(options.restarts() >= 1, "search_kkt_points – restarts must be >= 1 – got ",
              options.restarts());
  TORCH_CHECK(options.tol() > 0, "search_kkt_points – tol must be > 0 – got ", options.tol());
  TORCH_CHECK(options.max_iterations() >= 1,
              "search_kkt_points – max_iterations must be >= 1 – got ", options.max_iterations());
  torch::NoGradGuard no_grad;
  const auto& activation = ncf.options().activation();
  const bool kinked = has_kinks(activation);
  const auto starts = unit_gaussian_directions(options.restarts(), ncf.parameters(), options.seed(),
                                               RandomStream::kkt)
                          .to(ncf.inputs().options());
  const int64_t smooth_budget = kinked ? options.max_iterations() / 2 : options.max_iterations();
  auto state = smooth_ascent(ncf, starts, options, smooth_budget, kinked, progress);
  // Newton works on small dense matrices: CPU float64 is both faster and more accurate.
  const Ncf newton_ncf(ncf.options(), ncf.inputs().to(torch::kCPU, torch::kFloat64),
                       ncf.ybar().to(torch::kCPU, torch::kFloat64));

  KktSearchResult result;
  result.restarts = options.restarts();
  result.best_unconverged_residual = std::numeric_limits<double>::infinity();
  const auto u_options = state.u.options();
  const auto smooth = ncf.smooth_residual(state.u).cpu();
  const auto values = ncf.value(state.u).cpu();
  for (int64_t r = 0; r < options.restarts(); ++r) {
    stop_if_interrupted("the KKT search");
    auto row = state.u[r];
    int64_t iterations = state.iterations[r].item<int64_t>();
    if (kinked && smooth[r].item<double>() >= options.tol() &&
        ncf.kink_residual(row.unsqueeze(0), options.kink_tol()).residual.item<double>() >=
            options.tol()) {
      const auto newton = kink_newton(
          newton_ncf, row.to(torch::kCPU, torch::kFloat64),
          KinkNewtonOptions()
              .tol(options.tol())
              .kink_tol(options.kink_tol())
              .max_iterations(std::max<int64_t>(
                  1, std::min(kNewtonIterations, options.max_iterations() - iterations))));
      row = newton.direction.to(u_options);
      iterations += newton.iterations;
    }
    KktPoint point;
    point.direction = row.to(torch::kCPU, torch::kFloat64);
    point.ncf = kinked ? ncf.value(row.unsqueeze(0)).item<double>() : values[r].item<double>();
    point.residual =
        kinked ? ncf.smooth_residual(row.unsqueeze(0)).item<double>() : smooth[r].item<double>();
    if (kinked) {
      const auto kink = ncf.kink_residual(row.unsqueeze(0), options.kink_tol());
      point.kink_residual = kink.residual.item<double>();
      point.kinks = kink.kinks.item<int64_t>();
    } else {
      point.kink_residual = point.residual;
    }
    point.iterations = iterations;
    if (point.kink_residual >= options.tol()) {
      ++result.unconverged;
      result.best_unconverged_residual =
          std::min(result.best_unconverged_residual, point.kink_residual);
      continue;
    }
    ++result.converged;
    if (point.ncf < 0) {
      ++result.negative;
      continue;
    }
    bool merged = false;
    for (auto& known : result.points) {
      if (same_up_to_permutation(ncf, known.direction.to(ncf.inputs().options()), row,
                                 options.duplicate_tol())) {
        ++known.found_by;
        merged = true;
        break;
      }
    }
    if (!merged) result.points.push_back(point);
  }
  std::sort(result.points.begin(), result.points.end(),
            [](const KktPoint& a, const KktPoint& b) { return a.ncf > b.ncf; });
  if (result.unconverged == 0) result.best_unconverged_residual = 0;
  return result;
}

}  // namespace ncflab
