// NCF: the analytic gradient against autograd and central differences, residuals at
// hand-built KKT points (smooth and at a kink), which preactivations count as kinks, the
// kink projection, and the bounded least-squares solver.
#include "ncflab/ncf/ncf.h"
#include "support.h"

namespace ncflab {
namespace {

using testing::NetCase;
using testing::SeededTest;

Ncf make_ncf(const NetCase& c, int64_t d, int64_t n) {
  return Ncf(testing::model_options(c, d), torch::randn({n, d}, torch::kFloat64),
             torch::randn({n}, torch::kFloat64));
}

class NcfInvariants : public SeededTest, public ::testing::WithParamInterface<NetCase> {};

TEST_P(NcfInvariants, AnalyticGradientMatchesAutograd) {
  const auto ncf = make_ncf(GetParam(), 5, 30);
  auto u = torch::randn({3, ncf.parameters()}, torch::kFloat64).requires_grad_(true);
  const auto value = testing::ncf_value(ncf.layers(u), ncf.inputs(), ncf.ybar(), ncf.options());
  const auto autograd = torch::autograd::grad({value.sum()}, {u})[0];
  const auto eval = ncf.evaluate(u.detach());
  EXPECT_TRUE(torch::allclose(eval.value, value.detach(), 1e-13, 1e-13));
  EXPECT_TRUE(torch::allclose(eval.gradient, autograd, 1e-12, 1e-12));
}

TEST_P(NcfInvariants, AnalyticGradientMatchesCentralDifferences) {
  const auto ncf = make_ncf(GetParam(), 4, 20);
  const auto u = unit_rows(torch::randn({1, ncf.parameters()}, torch::kFloat64));
  const auto gradient = ncf.evaluate(u).gradient[0];
  // Every coordinate at once: rows u ± h·e_r. For p = 1, h is far below the distance of any
  // preactivation from its kink on random data, so N is smooth on [u − h·e_r, u + h·e_r].
  const double h = 1e-6;
  const auto steps = h * torch::eye(ncf.parameters(), torch::kFloat64);
  const auto central = (ncf.value(u + steps) - ncf.value(u - steps)) / (2 * h);
  const double scale = gradient.abs().max().item<double>();
  EXPECT_LT((central - gradient).abs().max().item<double>(), 1e-7 * scale);
}

TEST_P(NcfInvariants, VjpWithPerMemberOutputWeightsMatchesAutograd) {
  const auto options = testing::model_options(GetParam(), 4).members(2);
  FeedForward net(options);
  std::vector<torch::Tensor> weights;
  for (const auto& w : testing::random_weights(*net, 2)) weights.push_back(w.requires_grad_(true));
  const auto inputs = torch::randn({15, 4}, torch::kFloat64);
  const auto output_weights = torch::randn({2, 15}, torch::kFloat64);
  const auto outputs = feedforward_outputs(weights, inputs, options);
  const auto expected = torch::autograd::grad({(outputs * output_weights).sum()}, weights);
  std::vector<torch::Tensor> detached;
  for (const auto& w : weights) detached.push_back(w.detach());
  const auto cache = feedforward_forward(detached, inputs, options);
  EXPECT_TRUE(torch::allclose(cache.outputs, outputs.detach(), 1e-14, 1e-14));
  const auto got = feedforward_vjp(detached, inputs, options, cache, output_weights);
  ASSERT_EQ(got.size(), weights.size());
  for (size_t l = 0; l < weights.size(); ++l) {
    EXPECT_TRUE(torch::allclose(got[l], expected[l], 1e-12, 1e-12)) << "layer " << l + 1;
  }
}

TEST_P(NcfInvariants, SmoothResidualIsScaleInvariantAndPositiveAwayFromKkt) {
  const auto ncf = make_ncf(GetParam(), 5, 30);
  const auto u = torch::randn({4, ncf.parameters()}, torch::kFloat64);
  const auto residual = ncf.smooth_residual(u);
  EXPECT_TRUE(torch::allclose(ncf.smooth_residual(7.5 * u), residual, 1e-12, 1e-14));
  EXPECT_TRUE((residual > 1e-3).all().item<bool>()) << residual;
  EXPECT_TRUE((residual <= 1.0 + 1e-12).all().item<bool>());
}

INSTANTIATE_TEST_SUITE_P(Shapes, NcfInvariants, ::testing::ValuesIn(testing::net_cases()),
                         testing::case_name);

/// One hidden ReLU² unit, one data point x = e1 with ȳ = 1: N = v·max(w1, 0)², maximised
/// on the sphere at w = (√(2/3), 0), v = √(1/3) (balance ‖W_l‖² = q_l/L, q = (2, 1)).
TEST(NcfResiduals, VanishAtAHandBuiltSmoothKktPoint) {
  const Ncf ncf(FeedForwardOptions(2, {1}).activation(PolyLeakyReLUOptions().alpha(0).p(2)),
                torch::tensor({{1.0, 0.0}}, torch::kFloat64),
                torch::tensor({1.0}, torch::kFloat64));
  const auto best = torch::tensor({{std::sqrt(2.0 / 3), 0.0, std::sqrt(1.0 / 3)}}, torch::kFloat64);
  EXPECT_NEAR(ncf.value(best).item<double>(), (2.0 / 3) * std::sqrt(1.0 / 3), 1e-15);
  EXPECT_LT(ncf.smooth_residual(best).item<double>(), 1e-15);
  EXPECT_LT(ncf.kink_residual(best, 1e-6).residual.item<double>(), 1e-15);  // p = 2: same
  const auto off = torch::tensor({{0.8, 0.1, 0.5}}, torch::kFloat64);
  EXPECT_GT(ncf.smooth_residual(off).item<double>(), 0.05);
}

/// One Leaky ReLU (α = 0.2) unit, x_a = (1, 0.5) with ȳ = 1 and x_b = (0, 1) with ȳ = −1.
/// The single-neuron objective g(b) = σ(b1 + b2/2) − σ(b2) is maximised on the circle at
/// b = (1, 0), exactly on the kink of x_b: above it the b2-slope is 1/2 − 1 < 0, below it
/// 1/2 − α > 0, and slope s = 1/2 ∈ [α, 1] makes the tangent vanish. With v: u* = (b, 1)/√2.
Ncf kinked_single_neuron() {
  return Ncf(FeedForwardOptions(2, {1}).activation(PolyLeakyReLUOptions().alpha(0.2).p(1)),
             torch::tensor({{1.0, 0.5}, {0.0, 1.0}}, torch::kFloat64),
             torch::tensor({1.0, -1.0}, torch::kFloat64));
}

TEST(NcfResiduals, KinkAwareResidualVanishesAtAKinkWhereTheSmoothOneCannot) {
  const auto ncf = kinked_single_neuron();
  const auto kink = torch::tensor({{1.0, 0.0, 1.0}}, torch::kFloat64) / std::sqrt(2.0);
  EXPECT_NEAR(ncf.value(kink).item<double>(), 0.5, 1e-15);
  const auto smooth = ncf.smooth_residual(kink).item<double>();
  const auto clarke = ncf.kink_residual(kink, 1e-6);
  EXPECT_GT(smooth, 0.1);  // the slope σ'(0) = α leaves a tangent component
  EXPECT_LT(clarke.residual.item<double>(), 1e-14);
  EXPECT_EQ(clarke.kinks.item<int64_t>(), 1);
  // Just off the kink (|z| = 1e-9, inside the tolerance) the certificate still holds.
  const auto near = unit_rows(torch::tensor({{1.0, 1e-9, 1.0}}, torch::kFloat64));
  EXPECT_LT(ncf.kink_residual(near, 1e-6).residual.item<double>(), 1e-8);
  EXPECT_EQ(ncf.kink_residual(near, 1e-12).kinks.item<int64_t>(), 0);  // outside a tighter one
}

TEST(NcfResiduals, ProjectionOntoKinksZeroesTheirPreactivations) {
  const auto ncf = kinked_single_neuron();
  const auto row = unit_rows(torch::tensor({{1.0, 3e-4, 1.0}}, torch::kFloat64))[0];
  const auto kinks = ncf.kinks(row, 1e-3);
  ASSERT_EQ(kinks[0].size(0), 1);
  const auto projected = ncf.project_onto_kinks(row, kinks);
  EXPECT_NEAR(projected.norm().item<double>(), 1.0, 1e-15);
  EXPECT_NEAR(projected[1].item<double>(), 0.0, 1e-16);  // w·x_b = w2 = 0
  EXPECT_NEAR(projected[0].item<double>(), projected[2].item<double>(), 1e-6);
}

/// Depth 3, every first-layer row orthogonal to x_0 = e1 up to ~1e-12: sample 0's first-layer
/// preactivations are kinks and its activation column is ~1e-12, so each second-layer
/// preactivation at sample 0 is ~1e-12 too, though not small relative to that vanishing
/// column (here 0.64 of ‖row‖·‖column‖): it counts as a kink all the same. The second unit of
/// layer 2 has an all-zero row (a removed unit): z ≡ 0 there, but no kinks.
TEST(NcfResiduals, KinksFollowAVanishingColumnAndSkipZeroRows) {
  const Ncf ncf(
      FeedForwardOptions(3, {3, 2}).activation(PolyLeakyReLUOptions().alpha(0.1).p(1)),
      torch::tensor({{1.0, 0.0, 0.0}, {0.3, 1.0, 0.2}, {0.5, -0.4, 1.0}, {-0.2, 0.7, 0.6}},
                    torch::kFloat64),
      torch::tensor({1.0, -1.0, 0.5, 2.0}, torch::kFloat64));
  const auto w1 =
      torch::tensor({{1e-12, 1.0, 0.5}, {-2e-12, -0.3, 1.0}, {0.0, 0.8, -0.6}}, torch::kFloat64);
  const auto w2 = torch::tensor({{0.7, 0.4, -0.5}, {0.0, 0.0, 0.0}}, torch::kFloat64);
  const auto w3 = torch::tensor({{1.0, -1.0}}, torch::kFloat64);
  const auto u = unit_rows(join_layers({w1.unsqueeze(0), w2.unsqueeze(0), w3.unsqueeze(0)}))[0];
  const auto kinks = ncf.kinks(u, 1e-6);
  ASSERT_EQ(kinks.size(), 2u);
  EXPECT_TRUE(torch::equal(kinks[0], torch::tensor({{0, 0}, {1, 0}, {2, 0}}, torch::kLong)));
  EXPECT_TRUE(torch::equal(kinks[1], torch::tensor({{0, 0}}, torch::kLong)));
}

TEST(BoundedLeastSquares, MatchesTheUnconstrainedSolutionInsideTheBox) {
  torch::manual_seed(3);
  const auto m = torch::randn({8, 3}, torch::kFloat64);
  const auto t_true = torch::tensor({0.2, 0.5, 0.9}, torch::kFloat64);
  const auto t = bounded_least_squares(m, torch::matmul(m, t_true), 0.0, 1.0);
  EXPECT_TRUE(torch::allclose(t, t_true, 1e-12, 1e-12));
}

TEST(BoundedLeastSquares, SatisfiesTheBoxOptimalityConditions) {
  torch::manual_seed(4);
  for (int trial = 0; trial < 20; ++trial) {
    const auto m = torch::randn({6, 5}, torch::kFloat64);
    const auto b = 3 * torch::randn({6}, torch::kFloat64);
    const auto t = bounded_least_squares(m, b, -0.5, 1.0);
    // ∇ = Mᵀ(Mt − b): zero on free variables, ≥ 0 at the lower bound, ≤ 0 at the upper.
    const auto gradient = torch::matmul(m.t(), torch::matmul(m, t) - b);
    for (int64_t f = 0; f < 5; ++f) {
      const double tf = t[f].item<double>();
      const double gf = gradient[f].item<double>();
      ASSERT_GE(tf, -0.5);
      ASSERT_LE(tf, 1.0);
      if (tf <= -0.5 + 1e-12)
        EXPECT_GE(gf, -1e-10);
      else if (tf >= 1.0 - 1e-12)
        EXPECT_LE(gf, 1e-10);
      else
        EXPECT_NEAR(gf, 0.0, 1e-10);
    }
  }
}

}  // namespace
}  // namespace ncflab
