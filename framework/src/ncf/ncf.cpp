// NCF value, exact gradient and KKT residuals. The kink-aware residual frees the
// slope of every near-zero preactivation inside [min(α,1), max(α,1)] and picks the
// slopes that make the projected gradient smallest: a bounded least-squares problem.
#include "ncflab/ncf/ncf.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace ncflab {
namespace {

// v − ⟨v, û⟩û for rows v [R, P] and a unit vector û [P].
torch::Tensor project_out(const torch::Tensor& rows, const torch::Tensor& unit) {
  return rows - torch::matmul(rows, unit).unsqueeze(-1) * unit;
}

torch::Tensor least_squares(const torch::Tensor& matrix, const torch::Tensor& target) {
  // gelsd: SVD based, so rank-deficient systems get the minimum-norm solution.
  return std::get<0>(torch::linalg_lstsq(matrix, target.unsqueeze(1), c10::nullopt,
                                         c10::string_view("gelsd")))
      .squeeze(1);
}

}  // namespace

torch::Tensor unit_rows(const torch::Tensor& u) { return u / u.norm(2, -1, /*keepdim=*/true); }

Ncf::Ncf(FeedForwardOptions options, torch::Tensor inputs, torch::Tensor ybar)
    : options_(std::move(options)), inputs_(std::move(inputs)), ybar_(std::move(ybar)) {
  TORCH_CHECK(inputs_.dim() == 2 && inputs_.size(1) == options_.input_dim(),
              "Ncf – inputs must be [n, ", options_.input_dim(), "] – got ", inputs_.sizes());
  TORCH_CHECK(ybar_.dim() == 1 && ybar_.size(0) == inputs_.size(0),
              "Ncf – ybar must be [n] with n = ", inputs_.size(0), " – got ", ybar_.sizes());
  check_architecture(options_);
  shapes_ = ncflab::layer_shapes(options_);
  for (const auto& shape : shapes_) parameters_ += shape[0] * shape[1];
  degrees_ = layer_degrees(options_);
  for (int64_t q : degrees_) total_degree_ += q;
}

torch::Tensor Ncf::value(const torch::Tensor& u) const {
  return (feedforward_outputs(layers(u), inputs_, options_) * ybar_).sum(-1);
}

NcfEvaluation Ncf::evaluate(const torch::Tensor& u) const {
  torch::NoGradGuard no_grad;
  const auto weights = layers(u);
  const auto cache = feedforward_forward(weights, inputs_, options_);
  const auto grads = feedforward_vjp(weights, inputs_, options_, cache,
                                     ybar_.expand({weights.front().size(0), -1}));
  return {(cache.outputs * ybar_).sum(-1), join_layers(grads)};
}

torch::Tensor Ncf::smooth_residual(const torch::Tensor& u) const {
  const auto unit = unit_rows(u);
  const auto gradient = evaluate(unit).gradient;
  const auto tangent = gradient - (gradient * unit).sum(-1, /*keepdim=*/true) * unit;
  // A zero gradient is a KKT point (λ = 0): 0/tiny = 0.
  return tangent.norm(2, -1) / gradient.norm(2, -1).clamp_min(1e-300);
}

namespace {

// The slopes at the kinks of one direction û that make ∇N's tangent to the sphere
// smallest (SPEC §1, kink-aware residual): block coordinate descent over the kinked
// layers, each block a bounded least-squares solve (the gradient is affine in one
// layer's slopes).
class ClarkeDescent {
 public:
  ClarkeDescent(const FeedForwardOptions& options, const torch::Tensor& inputs,
                const torch::Tensor& ybar, std::vector<torch::Tensor> weights,
                const torch::Tensor& unit, std::vector<torch::Tensor> kinked, int rounds)
      : options_(options),
        inputs_(inputs),
        ybar_(ybar),
        weights_(std::move(weights)),
        cache_(feedforward_forward(weights_, inputs_, options_)),
        unit_(unit),
        kinked_(std::move(kinked)),
        rounds_(rounds),
        low_(std::min(options.activation().alpha(), 1.0)),
        high_(std::max(options.activation().alpha(), 1.0)) {}

  /// ∇N for `batch` slope sets at once: [batch, P].
  torch::Tensor gradient(const std::vector<torch::Tensor>& slope_set, int64_t batch) const {
    const auto grads =
        feedforward_vjp(weights_, inputs_, options_, cache_, ybar_.expand({batch, -1}), slope_set);
    return join_layers(grads);
  }

  /// σ'(z) per hidden layer, [1, k_l, n] (a kink takes the one-sided slope).
  std::vector<torch::Tensor> plain_slopes() const {
    std::vector<torch::Tensor> slopes;
    for (const auto& z : cache_.preactivations) {
      slopes.push_back(poly_leaky_relu_derivative(z, options_.activation()));
    }
    return slopes;
  }

  /// `slopes` with every kink at the middle of its interval.
  std::vector<torch::Tensor> middle_slopes(const std::vector<torch::Tensor>& slopes) const {
    std::vector<torch::Tensor> middle;
    for (size_t h = 0; h < slopes.size(); ++h) {
      middle.push_back(slopes[h].clone());
      if (kinked_[h].size(0) == 0) continue;
      middle[h].index_put_({torch::zeros_like(kinked_[h].select(1, 0)), kinked_[h].select(1, 0),
                            kinked_[h].select(1, 1)},
                           0.5 * (low_ + high_));
    }
    return middle;
  }

  /// From `current`, rounds over the layers until the tangent shrinks by less than 0.1%
  /// a round or reaches rounding: (gradient, tangent), each [P].
  std::pair<torch::Tensor, torch::Tensor> descend(std::vector<torch::Tensor> current) const {
    double previous = std::numeric_limits<double>::infinity();
    for (int round = 0; round < rounds_; ++round) {
      if (round > 0) {
        const auto g = gradient(current, 1)[0];
        const double tangent = project_out(g.unsqueeze(0), unit_)[0].norm().item<double>();
        const double scale = g.norm().item<double>();
        if (tangent <= 1e-15 * scale || tangent > 0.999 * previous) break;
        previous = tangent;
      }
      for (size_t h = 0; h < current.size(); ++h) solve_layer(current, h);
    }
    const auto g = gradient(current, 1)[0];
    return std::make_pair(g, project_out(g.unsqueeze(0), unit_)[0]);
  }

 private:
  // The best slopes of layer h's kinks with the other layers' slopes fixed.
  void solve_layer(std::vector<torch::Tensor>& current, size_t h) const {
    const auto& index = kinked_[h];
    const int64_t count = index.size(0);
    if (count == 0) return;
    const auto j = index.select(1, 0);
    const auto i = index.select(1, 1);
    // Batch element 0: every kink of this layer at the low slope; element f+1: kink f high.
    std::vector<torch::Tensor> slope_set;
    for (const auto& layer : current)
      slope_set.push_back(layer.expand({count + 1, -1, -1}).clone());
    auto layer_slopes = slope_set[h];
    layer_slopes.index_put_({torch::indexing::Slice(), j, i}, low_);
    const auto f = torch::arange(count, torch::kLong);
    layer_slopes.index_put_({f + 1, j, i}, high_);
    const auto gradients = gradient(slope_set, count + 1);
    const auto base = gradients[0];
    const auto columns = gradients.narrow(0, 1, count) - base;  // [F, P], exact: affine
    const auto matrix = project_out(columns, unit_).t().to(torch::kCPU, torch::kFloat64);
    const auto target = -project_out(base.unsqueeze(0), unit_)[0].to(torch::kCPU, torch::kFloat64);
    const auto t = bounded_least_squares(matrix, target, 0.0, 1.0).to(current[h].options());
    current[h].index_put_({torch::zeros_like(j), j, i}, low_ + (high_ - low_) * t);
  }

  const FeedForwardOptions& options_;
  const torch::Tensor& inputs_;
  const torch::Tensor& ybar_;
  std::vector<torch::Tensor> weights_;
  FeedForwardCache cache_;
  torch::Tensor unit_;
  std::vector<torch::Tensor> kinked_;
  int rounds_;
  double low_;
  double high_;
};

}  // namespace

Ncf::ClarkeChoice Ncf::best_clarke_gradient(const torch::Tensor& unit_row, double tolerance) const {
  torch::NoGradGuard no_grad;
  const auto kinked = kinks(unit_row, tolerance);
  int64_t kink_count = 0;
  int kinked_layers = 0;
  for (const auto& k : kinked) {
    kink_count += k.size(0);
    kinked_layers += k.size(0) > 0 ? 1 : 0;
  }
  // One kinked layer: the gradient is affine in its slopes, one solve is exact. Several:
  // solve layer by layer in rounds (the gradient is multilinear: block coordinate descent).
  const int rounds = kinked_layers == 1 ? 1 : 100;
  const ClarkeDescent descent(options_, inputs_, ybar_, layers(unit_row.unsqueeze(0)), unit_row,
                              kinked, rounds);
  const auto slopes = descent.plain_slopes();
  if (kink_count == 0) {
    const auto gradient = descent.gradient(slopes, 1)[0];
    return {gradient, project_out(gradient.unsqueeze(0), unit_row)[0], 0};
  }
  auto best = descent.descend(slopes);
  if (kinked_layers > 1) {
    // The problem is not convex: start again with every kink at the middle of its interval
    // and keep the better end. (At the one-sided slope σ'(0) = α, 0 for ReLU, a kink and the
    // kinks below it at the same sample can silence each other's columns: a stationary point
    // of the block descent that is no minimum.)
    auto other = descent.descend(descent.middle_slopes(slopes));
    if (other.second.norm().item<double>() < best.second.norm().item<double>()) best = other;
  }
  return {best.first, best.second, kink_count};
}

std::vector<torch::Tensor> Ncf::kinks(const torch::Tensor& unit_row, double tolerance) const {
  torch::NoGradGuard no_grad;
  const auto& activation = options_.activation();
  const auto weights = layers(unit_row.unsqueeze(0));
  const auto cache = feedforward_forward(weights, inputs_, options_);
  std::vector<torch::Tensor> result;
  const bool has_kink = has_kinks(activation);
  torch::Tensor silent;  // [n]: the previous layer's whole column is at kinks or removed
  for (size_t h = 0; h < cache.preactivations.size(); ++h) {
    if (!has_kink) {
      result.push_back(torch::empty({0, 2}, torch::kLong));
      continue;
    }
    // |z_ji| ≤ tol·‖W_l[j,:]‖·‖a_{l−1}[:,i]‖: scale-free closeness to the kink.
    const auto row_norms = weights[h][0].norm(2, 1, /*keepdim=*/true);  // [k_l, 1]
    const auto column_norms = h == 0 ? inputs_.norm(2, 1).unsqueeze(0)  // [1, n]
                                     : cache.activations[h - 1][0].norm(2, 0, /*keepdim=*/true);
    // A unit with an all-zero row (removed) has no kinks: its z vanishes identically.
    const auto alive = row_norms > 0;
    auto near = (cache.preactivations[h][0].abs() <= tolerance * row_norms * column_norms) & alive;
    // Where every preactivation feeding sample i sits at a kink, a_{l−1}[:,i] is zero to
    // tolerance and so is z_ji for every j, but the relative test above divides by that
    // vanishing column: count these as kinks directly.
    if (h > 0) near = near | (silent.unsqueeze(0) & alive);
    silent = (near | ~alive).all(0);
    result.push_back(near.nonzero().to(torch::kCPU));
  }
  return result;
}

torch::Tensor Ncf::project_onto_kinks(const torch::Tensor& unit_row,
                                      const std::vector<torch::Tensor>& kinked) const {
  torch::NoGradGuard no_grad;
  auto row = unit_row.clone();
  auto weights = layers(row.unsqueeze(0));  // views into `row`
  for (size_t h = 0; h < kinked.size(); ++h) {
    if (kinked[h].size(0) == 0) continue;
    const auto cache = feedforward_forward(weights, inputs_, options_);
    const auto previous = h == 0 ? inputs_.t() : cache.activations[h - 1][0];  // [k_{l−1}, n]
    const auto units = std::get<0>(at::_unique(kinked[h].select(1, 0)));
    for (int64_t a = 0; a < units.size(0); ++a) {
      const int64_t j = units[a].item<int64_t>();
      const auto samples = kinked[h].index({kinked[h].select(1, 0) == j}).select(1, 1);
      const auto basis = previous.index_select(1, samples.to(previous.device()));  // [k_{l−1}, c]
      auto w = weights[h][0][j];
      // w ← w − A (AᵀA)⁺ Aᵀ w: the least-squares fit of w in span(A), removed.
      const auto coefficients = least_squares(basis, w);
      w.sub_(torch::matmul(basis, coefficients));
    }
  }
  return row / row.norm();
}

KinkResidual Ncf::kink_residual(const torch::Tensor& u, double tolerance) const {
  const auto unit = unit_rows(u);
  auto residual = torch::empty({unit.size(0)}, unit.options());
  auto kinks = torch::zeros({unit.size(0)}, torch::kLong);
  for (int64_t s = 0; s < unit.size(0); ++s) {
    const auto choice = best_clarke_gradient(unit[s], tolerance);
    residual[s] = choice.tangent.norm() / choice.gradient.norm().clamp_min(1e-300);
    kinks[s] = choice.kinks;
  }
  return {residual, kinks};
}

std::pair<torch::Tensor, torch::Tensor> Ncf::clarke_ascent_direction(const torch::Tensor& u,
                                                                     double tolerance) const {
  const auto unit = unit_rows(u);
  auto directions = torch::empty_like(unit);
  auto kinks = torch::zeros({unit.size(0)}, torch::kLong);
  for (int64_t s = 0; s < unit.size(0); ++s) {
    const auto choice = best_clarke_gradient(unit[s], tolerance);
    directions[s] = choice.tangent;
    kinks[s] = choice.kinks;
  }
  return {directions, kinks};
}

torch::Tensor bounded_least_squares(const torch::Tensor& matrix, const torch::Tensor& target,
                                    double lower, double upper) {
  TORCH_CHECK(matrix.dim() == 2 && target.dim() == 1 && matrix.size(0) == target.size(0),
              "bounded_least_squares – need M [m, F] and b [m] – got ", matrix.sizes(), " and ",
              target.sizes());
  TORCH_CHECK(lower <= upper, "bounded_least_squares – empty box [", lower, ", ", upper, "]");
  const auto m = matrix.to(torch::kCPU, torch::kFloat64);
  const auto b = target.to(torch::kCPU, torch::kFloat64);
  const int64_t count = m.size(1);
  // state: −1 held at the lower bound, +1 at the upper bound, 0 free.
  std::vector<int> state(static_cast<size_t>(count), -1);
  auto t = torch::full({count}, lower, torch::kFloat64);
  const double scale = (m.norm() * b.norm()).item<double>() + 1e-300;
  const double width = upper - lower;

  for (int64_t outer = 0; outer < 3 * count + 20; ++outer) {
    // The bound variable whose release most decreases ½‖Mt − b‖² (Lawson–Hanson).
    const auto w = torch::matmul(m.t(), b - torch::matmul(m, t));
    const auto wa = w.accessor<double, 1>();
    int64_t release = -1;
    double best = 1e-13 * scale;
    for (int64_t f = 0; f < count; ++f) {
      const double gain = state[f] == -1 ? wa[f] : state[f] == 1 ? -wa[f] : 0.0;
      if (gain > best) {
        best = gain;
        release = f;
      }
    }
    if (release < 0) break;  // KKT conditions of the box problem hold
    state[release] = 0;

    for (int64_t inner = 0; inner <= count; ++inner) {
      std::vector<int64_t> free;
      for (int64_t f = 0; f < count; ++f) {
        if (state[f] == 0) free.push_back(f);
      }
      if (free.empty()) break;
      const auto free_index = torch::tensor(free, torch::kLong);
      auto held = t.clone();
      held.index_fill_(0, free_index, 0.0);
      const auto candidate =
          least_squares(m.index_select(1, free_index), b - torch::matmul(m, held));
      const auto current = t.index_select(0, free_index);
      const double slack = 1e-12 * width;
      if (((candidate >= lower - slack) & (candidate <= upper + slack)).all().item<bool>()) {
        t.index_copy_(0, free_index, candidate.clamp(lower, upper));
        break;
      }
      // Walk from the feasible point toward the candidate until a bound is hit.
      const auto step = candidate - current;
      const auto to_lower =
          torch::where(candidate < lower, (lower - current) / step, torch::full_like(step, 1.0));
      const auto to_upper =
          torch::where(candidate > upper, (upper - current) / step, torch::full_like(step, 1.0));
      const double alpha =
          std::clamp(torch::minimum(to_lower, to_upper).min().item<double>(), 0.0, 1.0);
      t.index_copy_(0, free_index, (current + alpha * step).clamp(lower, upper));
      auto ta = t.accessor<double, 1>();
      for (int64_t f : free) {
        if (ta[f] <= lower + slack) {
          state[f] = -1;
          ta[f] = lower;
        } else if (ta[f] >= upper - slack) {
          state[f] = 1;
          ta[f] = upper;
        }
      }
    }
  }
  return t;
}

}  // namespace ncflab
