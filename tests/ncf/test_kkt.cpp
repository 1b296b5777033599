// The KKT search: points found on p = 2, 3 nets and on deep Leaky ReLU nets (maxima on
// kinks) satisfy the KKT conditions and the balance law; hand-built problems (smooth and at
// a kink) are solved exactly, also by the kink Newton method alone; starts that end at the
// same point up to a permutation of hidden units are merged.
#include <algorithm>
#include <limits>

#include "ncflab/model/data.h"
#include "ncflab/ncf/kink_newton.h"
#include "ncflab/ncf/kkt.h"
#include "ncflab/ncf/structure.h"
#include "support.h"

namespace ncflab {
namespace {

using testing::SeededTest;

class KktSearch : public SeededTest {};

Ncf random_problem(std::vector<int64_t> widths, double alpha, int64_t p, int64_t n, int64_t d) {
  auto data = make_synthetic_data(SyntheticDataOptions().n(n).d(d).seed(7).teacher_activation(
      PolyLeakyReLUOptions().alpha(alpha).p(p)));
  return Ncf(
      FeedForwardOptions(d, std::move(widths)).activation(PolyLeakyReLUOptions().alpha(alpha).p(p)),
      data.inputs, data.labels);
}

// Labels ±1 independent of the inputs: the maxima of deep Leaky ReLU nets then sit on kinks
// (with a teacher neuron on so few samples they are smooth).
Ncf random_signs_problem(std::vector<int64_t> widths, double alpha, int64_t n, int64_t d) {
  auto data = make_synthetic_data(
      SyntheticDataOptions().n(n).d(d).seed(7).teacher(TeacherKind::random_signs));
  return Ncf(
      FeedForwardOptions(d, std::move(widths)).activation(PolyLeakyReLUOptions().alpha(alpha).p(1)),
      data.inputs, data.labels);
}

double layer_sv_ratio(const torch::Tensor& layer) {
  const auto sv = torch::linalg_svdvals(layer);
  return sv.size(0) < 2 ? 0.0 : (sv[1] / sv[0]).item<double>();
}

void expect_kkt_structure(const Ncf& ncf, const KktSearchResult& result) {
  ASSERT_FALSE(result.points.empty());
  const double total = static_cast<double>(ncf.total_degree());
  for (const auto& point : result.points) {
    EXPECT_LT(point.residual, 1e-10);
    EXPECT_GE(point.ncf, 0.0);
    const auto layers = ncf.layers(point.direction.unsqueeze(0));
    for (size_t l = 0; l < layers.size(); ++l) {
      // ‖W_l‖² = q_l / L at every KKT point with N ≠ 0.
      EXPECT_NEAR(layers[l].square().sum().item<double>(), ncf.degrees()[l] / total, 1e-8);
    }
  }
  // The best point is rank one in every layer.
  for (const auto& layer : ncf.layers(result.points.front().direction.unsqueeze(0))) {
    EXPECT_LT(layer_sv_ratio(layer[0]), 1e-8);
  }
  for (size_t k = 1; k < result.points.size(); ++k) {
    EXPECT_GE(result.points[k - 1].ncf, result.points[k].ncf);
  }
}

TEST_F(KktSearch, FindsKktPointsOfAPolynomialTwoLayerNet) {
  const auto ncf = random_problem({6}, 0.2, 2, 30, 4);
  const auto result = search_kkt_points(ncf, KktSearchOptions().restarts(8));
  expect_kkt_structure(ncf, result);
  EXPECT_EQ(result.converged, 8);
}

TEST_F(KktSearch, FindsKktPointsOfACubicDeepNet) {
  const auto ncf = random_problem({4, 3}, 0.5, 3, 25, 3);
  const auto result = search_kkt_points(ncf, KktSearchOptions().restarts(6));
  expect_kkt_structure(ncf, result);
}

TEST_F(KktSearch, SolvesTheHandBuiltSmoothProblemExactly) {
  // N = v·max(w1, 0)² with x = e1, ȳ = 1: best N* = (2/3)·√(1/3) at w = (√(2/3), 0), v = √(1/3).
  const Ncf ncf(FeedForwardOptions(2, {1}).activation(PolyLeakyReLUOptions().alpha(0).p(2)),
                torch::tensor({{1.0, 0.0}}, torch::kFloat64),
                torch::tensor({1.0}, torch::kFloat64));
  const auto result = search_kkt_points(ncf, KktSearchOptions().restarts(6));
  ASSERT_FALSE(result.points.empty());
  const auto& best = result.points.front();
  EXPECT_NEAR(best.ncf, (2.0 / 3) * std::sqrt(1.0 / 3), 1e-12);
  EXPECT_TRUE(torch::allclose(
      best.direction, torch::tensor({std::sqrt(2.0 / 3), 0.0, std::sqrt(1.0 / 3)}, torch::kFloat64),
      0, 1e-8));
}

TEST_F(KktSearch, FindsTheKinkOfTheHandBuiltLeakyReluProblem) {
  // See NcfResiduals.KinkAwareResidualVanishesAtAKinkWhereTheSmoothOneCannot: the maximum
  // sits on a kink at u* = (1, 0, 1)/√2 with N* = 1/2.
  const Ncf ncf(FeedForwardOptions(2, {1}).activation(PolyLeakyReLUOptions().alpha(0.2).p(1)),
                torch::tensor({{1.0, 0.5}, {0.0, 1.0}}, torch::kFloat64),
                torch::tensor({1.0, -1.0}, torch::kFloat64));
  const auto result = search_kkt_points(ncf, KktSearchOptions().restarts(8).tol(1e-9));
  ASSERT_FALSE(result.points.empty());
  const auto& best = result.points.front();
  EXPECT_NEAR(best.ncf, 0.5, 1e-9);
  EXPECT_TRUE(torch::allclose(
      best.direction, torch::tensor({1.0, 0.0, 1.0}, torch::kFloat64) / std::sqrt(2.0), 0, 1e-7));
  EXPECT_LT(best.kink_residual, 1e-6);
  EXPECT_GT(best.residual, 0.1);
  EXPECT_EQ(best.kinks, 1);
}

TEST_F(KktSearch, LeakyReluPointsCarryAKinkCertificate) {
  const auto ncf = random_problem({5}, 0.1, 1, 40, 3);
  const auto result = search_kkt_points(ncf, KktSearchOptions().restarts(8).tol(1e-8));
  ASSERT_FALSE(result.points.empty());
  for (const auto& point : result.points) EXPECT_LT(point.kink_residual, 1e-6);
}

// Every point: kink-aware residual below `tol`, N ≥ 0 and ‖W_l‖² = q_l/L. Returns the
// largest smooth residual among them.
double expect_kink_certificates(const Ncf& ncf, const KktSearchResult& result, double tol) {
  EXPECT_FALSE(result.points.empty());
  const double total = static_cast<double>(ncf.total_degree());
  double worst_smooth = 0;
  for (const auto& point : result.points) {
    EXPECT_LT(point.kink_residual, tol);
    EXPECT_GE(point.ncf, 0.0);
    const auto layers = ncf.layers(point.direction.unsqueeze(0));
    for (size_t l = 0; l < layers.size(); ++l) {
      EXPECT_NEAR(layers[l].square().sum().item<double>(), ncf.degrees()[l] / total, 1e-8);
    }
    worst_smooth = std::max(worst_smooth, point.residual);
  }
  return worst_smooth;
}

// Depth 3, α = 0.1: the maxima sit on kinks, where the smooth ascent stalls with smooth
// residuals ~1e-2; the active-set Newton method lands on them exactly.
TEST_F(KktSearch, DeepLeakyReluPointsSitOnKinksWithAClarkeCertificate) {
  const auto ncf = random_signs_problem({5, 5}, 0.1, 30, 4);
  const auto result = search_kkt_points(ncf, KktSearchOptions().restarts(8));
  EXPECT_EQ(result.unconverged, 0);
  const double worst_smooth = expect_kink_certificates(ncf, result, 1e-8);
  EXPECT_GT(worst_smooth, 1e-3);  // genuinely non-smooth points
}

// What a zero kink-aware residual certifies (README "What the kink-aware residual
// certifies"): stationarity for independent slopes per kinked pair, a relaxation of the
// Clarke set. The points the search certifies are maxima: along random tangent directions
// d (⟨d, û⟩ = 0) the one-sided derivative of N on the sphere, (N(û + εd)/‖û + εd‖^L − N(û))/ε,
// is ≤ 0 up to the O(ε) curvature term, on both sides of every kink at once. A point moved
// off its kink is no longer one: some direction gains at first order.
TEST_F(KktSearch, CertifiedKinkedPointsAreMaximaAlongRandomOneSidedDirections) {
  const auto ncf = random_signs_problem({5, 5}, 0.1, 30, 4);
  const auto result = search_kkt_points(ncf, KktSearchOptions().restarts(4));
  ASSERT_FALSE(result.points.empty());
  const double epsilon = 1e-7;
  const double total = static_cast<double>(ncf.total_degree());
  const auto on_sphere = [&](const torch::Tensor& u) {
    return (ncf.value(u.unsqueeze(0)) / u.norm().pow(total)).item<double>();
  };
  const auto largest_slope = [&](const torch::Tensor& u, int64_t directions) {
    const double base = on_sphere(u);
    double largest = -std::numeric_limits<double>::infinity();
    for (int64_t k = 0; k < directions; ++k) {
      auto d = torch::randn_like(u);
      d = d - (d * u).sum() * u;
      d = d / d.norm();
      largest = std::max(largest, (on_sphere(u + epsilon * d) - base) / epsilon);
    }
    return largest;
  };
  int64_t kinked_points = 0;
  for (const auto& point : result.points) {
    ASSERT_LT(point.kink_residual, 1e-8);
    kinked_points += point.kinks > 0 ? 1 : 0;
    const auto gradient_norm =
        ncf.evaluate(point.direction.unsqueeze(0)).gradient.norm().item<double>();
    // First order ≤ 0; the curvature term is O(ε·‖Hessian‖) ≈ ε·L²·N.
    EXPECT_LT(largest_slope(point.direction, 200), 1e-4 * gradient_norm)
        << "N " << point.ncf << ", kinks " << point.kinks;
  }
  EXPECT_GT(kinked_points, 0) << "no point sat on a kink: the test checks nothing";
  // Off the kink by 1e-3 in a random tangent direction: some direction gains at first order.
  const auto& best = result.points.front().direction;
  auto shift = torch::randn_like(best);
  shift = shift - (shift * best).sum() * best;
  const auto moved = unit_rows((best + 1e-3 * shift / shift.norm()).unsqueeze(0))[0];
  const auto gradient = ncf.evaluate(moved.unsqueeze(0)).gradient.reshape_as(moved);
  const double moved_gradient = gradient.norm().item<double>();
  // Random directions find it only by luck (their projections on the one that gains are
  // ~1/√P); the gradient of N on the sphere, ∇N − (∇N·û)û, is the direction of steepest gain.
  const auto uphill = gradient - (gradient * moved).sum() * moved;
  const double along_uphill =
      (on_sphere(moved + epsilon * uphill / uphill.norm()) - on_sphere(moved)) / epsilon;
  EXPECT_GT(along_uphill, 1e-2 * moved_gradient);
  EXPECT_GT(along_uphill, largest_slope(moved, 200));
}

// ReLU (α = 0), depth 3: units without a positive preactivation are removed as a whole
// (their incoming and outgoing weights vanish) instead of being held as n kinks each.
TEST_F(KktSearch, DeepReluPointsConvergeWithDeadUnitsRemoved) {
  const auto ncf = random_signs_problem({6, 5}, 0.0, 30, 4);
  const auto result = search_kkt_points(ncf, KktSearchOptions().restarts(8));
  EXPECT_EQ(result.unconverged, 0);
  expect_kink_certificates(ncf, result, 1e-8);
  int64_t removed = 0;
  for (const auto& point : result.points) {
    const auto layers = ncf.layers(point.direction.unsqueeze(0));
    for (size_t h = 0; h + 1 < layers.size(); ++h) {
      const auto incoming = layers[h][0].abs().sum(1);
      const auto outgoing = layers[h + 1][0].abs().sum(0);
      removed += ((incoming == 0) & (outgoing == 0)).sum().item<int64_t>();
    }
  }
  EXPECT_GT(removed, 0);
}

// The single-layer ReLU² model H = Σ_j σ(w_jᵀx) (L = 2) on 2-D inputs x1 = (2, 1),
// x2 = (1, 2), x3 = (−1, −3) with ȳ = (1, 1, 2). Its NCF is Σ_j ‖w_j‖² g(ŵ_j) with the
// single-neuron objective g(b) = Σ_i ȳ_i max(bᵀx_i, 0)², so at a KKT point (λ = 2N) every
// live unit's direction ŵ_j is a KKT point of g on the unit circle with g(ŵ_j) = N. g has
// two maxima: b = (1, 1)/√2, where x1 and x2 are active and g = bᵀ(x1x1ᵀ + x2x2ᵀ)b = 9, and
// b = x3/‖x3‖ with g = 2·‖x3‖² = 20.
Ncf single_layer_relu_squared(int64_t units) {
  return Ncf(FeedForwardOptions(2, {units})
                 .kind(ModelKind::single_layer)
                 .activation(PolyLeakyReLUOptions().alpha(0).p(2)),
             torch::tensor({{2.0, 1.0}, {1.0, 2.0}, {-1.0, -3.0}}, torch::kFloat64),
             torch::tensor({1.0, 1.0, 2.0}, torch::kFloat64));
}

TEST_F(KktSearch, SingleLayerReluSquaredPointsPutEveryUnitOnASingleNeuronKktDirection) {
  const auto ncf = single_layer_relu_squared(3);
  const auto neuron = single_layer_relu_squared(1);  // N = g(b) for b = w1
  const auto result = search_kkt_points(ncf, KktSearchOptions().restarts(8));
  EXPECT_EQ(result.converged, 8);
  ASSERT_FALSE(result.points.empty());
  for (const auto& point : result.points) {
    EXPECT_LT(point.residual, 1e-10);
    const auto w = ncf.layers(point.direction.unsqueeze(0))[0][0];  // [k, 2]
    int64_t live = 0;
    for (int64_t j = 0; j < 3; ++j) {
      const double norm = w[j].norm().item<double>();
      if (norm < 1e-4) continue;  // a unit the ascent switched off (g(ŵ_j) ≤ 0 where it went)
      ++live;
      const auto b = (w[j] / norm).unsqueeze(0);  // a unit vector in the input plane
      EXPECT_LT(neuron.smooth_residual(b).item<double>(), 1e-8) << "unit " << j;
      EXPECT_NEAR(neuron.value(b).item<double>(), point.ncf, 1e-8 * point.ncf) << "unit " << j;
    }
    EXPECT_GT(live, 0);
  }
  // The best point: every live unit along x3/‖x3‖, N = 20; rank one with one-signed scales.
  const auto& best = result.points.front();
  EXPECT_NEAR(best.ncf, 20.0, 1e-9);
  const auto structure = analyze_structure(ncf, best.direction);
  ASSERT_EQ(structure.layers.size(), 1u);
  ASSERT_EQ(structure.hidden.size(), 1u);
  EXPECT_NEAR(structure.layers[0].norm2, 1.0, 1e-12);  // q_1/L = 1
  EXPECT_LT(structure.layers[0].sv_ratio, 1e-8);
  EXPECT_EQ(structure.hidden[0].sign_fraction, 1.0);
  const auto b = torch::tensor(structure.input_direction, torch::kFloat64);
  const auto expected = torch::tensor({-1.0, -3.0}, torch::kFloat64) / std::sqrt(10.0);
  EXPECT_NEAR((b * expected).sum().item<double>(), 1.0, 1e-10);
  EXPECT_LT(structure.single_neuron_residual, 1e-8);
}

// Leaky ReLU (α = 0.1), single layer: L = 1; maxima sit on kinks, where the active-set Newton
// method (kink_newton) certifies them with the kink-aware residual.
TEST_F(KktSearch, SingleLayerLeakyReluPointsCarryAKinkCertificate) {
  auto data = make_synthetic_data(
      SyntheticDataOptions().n(20).d(3).seed(7).teacher(TeacherKind::random_signs));
  const Ncf ncf(FeedForwardOptions(3, {4})
                    .kind(ModelKind::single_layer)
                    .activation(PolyLeakyReLUOptions().alpha(0.1).p(1)),
                data.inputs, data.labels);
  ASSERT_EQ(ncf.total_degree(), 1);
  const auto result = search_kkt_points(ncf, KktSearchOptions().restarts(8));
  EXPECT_EQ(result.unconverged, 0);
  ASSERT_FALSE(result.points.empty());
  for (const auto& point : result.points) {
    EXPECT_LT(point.kink_residual, 1e-8);
    EXPECT_GE(point.ncf, 0.0);
  }
}

TEST(KinkNewton, LandsOnTheHandBuiltKinkFromASmoothStart) {
  // The problem of FindsTheKinkOfTheHandBuiltLeakyReluProblem, started at b = (1, 0.05),
  // where z_b = b2 > 0: Newton steps toward the kink, holds it and stops at u* exactly.
  const Ncf ncf(FeedForwardOptions(2, {1}).activation(PolyLeakyReLUOptions().alpha(0.2).p(1)),
                torch::tensor({{1.0, 0.5}, {0.0, 1.0}}, torch::kFloat64),
                torch::tensor({1.0, -1.0}, torch::kFloat64));
  const auto start = unit_rows(torch::tensor({{1.0, 0.05, 0.9}}, torch::kFloat64))[0];
  const auto result = kink_newton(ncf, start);
  EXPECT_TRUE(torch::allclose(result.direction,
                              torch::tensor({1.0, 0.0, 1.0}, torch::kFloat64) / std::sqrt(2.0), 0,
                              1e-12));
  EXPECT_EQ(result.held_kinks, 1);
  EXPECT_LT(ncf.kink_residual(result.direction.unsqueeze(0), 1e-6).residual.item<double>(), 1e-10);
  EXPECT_LE(result.iterations, 20);
}

TEST(KinkNewton, RejectsSmoothActivations) {
  const auto ncf = random_problem({3}, 0.2, 2, 10, 2);  // p = 2: no kinks
  EXPECT_THROW(kink_newton(ncf, unit_rows(torch::ones({1, ncf.parameters()}, torch::kFloat64))[0]),
               c10::Error);
}

TEST(KktDuplicates, PermutedHiddenUnitsAreTheSamePoint) {
  torch::manual_seed(5);
  const auto ncf = random_problem({3, 2}, 0.2, 2, 10, 2);
  const auto u = unit_rows(torch::randn({1, ncf.parameters()}, torch::kFloat64))[0];
  auto layers = ncf.layers(u.unsqueeze(0));
  const auto perm = torch::tensor({2, 0, 1}, torch::kLong);
  std::vector<torch::Tensor> permuted = {layers[0].index_select(1, perm),
                                         layers[1].index_select(2, perm), layers[2]};
  const auto v = join_layers(permuted)[0];
  EXPECT_TRUE(torch::allclose(ncf.value(v.unsqueeze(0)), ncf.value(u.unsqueeze(0)), 1e-13, 1e-14));
  EXPECT_TRUE(same_up_to_permutation(ncf, u, v, 1e-10));
  EXPECT_FALSE(same_up_to_permutation(ncf, u, -v, 1e-3));
}

}  // namespace
}  // namespace ncflab
