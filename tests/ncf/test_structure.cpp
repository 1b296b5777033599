// Structure metrics on directions built by hand: a rank-one point with a known
// hidden vector, a full-rank one, and the single-neuron residual of the input direction;
// the rank-one KKT conditions as conditions: points constructed from single-neuron KKT
// directions (smooth and at a kink) are KKT points of the full NCF, others are not.
#include "ncflab/ncf/structure.h"
#include "support.h"

namespace ncflab {
namespace {

/// Two-layer ReLU² net on one data point x = e1 (ȳ = 1): its KKT point puts all weight on
/// one unit, w = (√(2/3), 0), v = √(1/3); here widths 3 with the mass on unit 2.
TEST(Structure, MeasuresAHandBuiltRankOnePoint) {
  const Ncf ncf(FeedForwardOptions(2, {3}).activation(PolyLeakyReLUOptions().alpha(0).p(2)),
                torch::tensor({{1.0, 0.0}}, torch::kFloat64),
                torch::tensor({1.0}, torch::kFloat64));
  auto u = torch::zeros({ncf.parameters()}, torch::kFloat64);
  u[2] = std::sqrt(2.0 / 3);  // W1[1, 0]
  u[7] = std::sqrt(1.0 / 3);  // W2[0, 1]
  const auto structure = analyze_structure(ncf, u);
  ASSERT_EQ(structure.layers.size(), 2u);
  EXPECT_NEAR(structure.layers[0].norm2, 2.0 / 3, 1e-15);
  EXPECT_NEAR(structure.layers[0].target_norm2, 2.0 / 3, 1e-15);
  EXPECT_NEAR(structure.balance_error, 0.0, 1e-15);
  EXPECT_LT(structure.layers[0].sv_ratio, 1e-15);
  EXPECT_TRUE(structure.rank_one);
  ASSERT_EQ(structure.hidden.size(), 1u);
  EXPECT_EQ(structure.hidden[0].support, 1);
  EXPECT_EQ(structure.hidden[0].units, 3);
  EXPECT_EQ(structure.hidden[0].sign_fraction, 1.0);
  EXPECT_NEAR(structure.input_direction[0], 1.0, 1e-15);
  EXPECT_NEAR(structure.input_direction[1], 0.0, 1e-15);
  // b = e1 maximises Σ ȳ σ(bᵀx) = max(b1, 0)² on the circle: a KKT point.
  EXPECT_LT(structure.single_neuron_residual, 1e-15);
}

/// The single-layer ReLU² model on x = e1 (ȳ = 1): N = Σ_j max(w_j1, 0)², so every unit
/// along e1 with Σ_j ‖w_j‖² = 1 is a KKT point (N = 1, λ = 2). W1 is the only layer (share
/// q_1/L = 1) and a hidden layer: its left singular vector holds the units' scales.
TEST(Structure, MeasuresASingleLayerModelsUnitsAsItsHiddenVector) {
  const Ncf ncf(FeedForwardOptions(2, {3})
                    .kind(ModelKind::single_layer)
                    .activation(PolyLeakyReLUOptions().alpha(0).p(2)),
                torch::tensor({{1.0, 0.0}}, torch::kFloat64),
                torch::tensor({1.0}, torch::kFloat64));
  // Units (0.6, 0), (0, 0), (0.8, 0): rank one, support 2 of 3, spread (0.8 − 0.6)/0.8.
  const auto u = torch::tensor({0.6, 0.0, 0.0, 0.0, 0.8, 0.0}, torch::kFloat64);
  EXPECT_LT(ncf.smooth_residual(u.unsqueeze(0)).item<double>(), 1e-15);
  const auto structure = analyze_structure(ncf, u);
  ASSERT_EQ(structure.layers.size(), 1u);
  EXPECT_NEAR(structure.layers[0].norm2, 1.0, 1e-15);
  EXPECT_EQ(structure.layers[0].target_norm2, 1.0);
  EXPECT_NEAR(structure.balance_error, 0.0, 1e-15);
  EXPECT_LT(structure.layers[0].sv_ratio, 1e-15);
  EXPECT_TRUE(structure.rank_one);
  ASSERT_EQ(structure.hidden.size(), 1u);
  EXPECT_EQ(structure.hidden[0].layer, 1);
  EXPECT_EQ(structure.hidden[0].units, 3);
  EXPECT_EQ(structure.hidden[0].support, 2);
  EXPECT_EQ(structure.hidden[0].sign_fraction, 1.0);
  EXPECT_NEAR(structure.hidden[0].magnitude_spread, 0.25, 1e-15);
  EXPECT_NEAR(structure.input_direction[0], 1.0, 1e-15);
  // g = σ once: b = e1 maximises max(b1, 0)² on the circle.
  EXPECT_LT(structure.single_neuron_residual, 1e-15);
}

TEST(Structure, MeasuresSpreadSignsAndFullRank) {
  const Ncf ncf(FeedForwardOptions(2, {3}).activation(PolyLeakyReLUOptions().alpha(0.2).p(1)),
                torch::tensor({{1.0, 0.0}, {0.0, 1.0}}, torch::kFloat64),
                torch::tensor({1.0, 1.0}, torch::kFloat64));
  // W1 = a bᵀ with a = (2, −1, 1), b = (0.6, 0.8): rank one, signs 2 of 3, spread (2−1)/2.
  auto w1 = torch::outer(torch::tensor({2.0, -1.0, 1.0}, torch::kFloat64),
                         torch::tensor({0.6, 0.8}, torch::kFloat64));
  auto u = torch::cat({w1.flatten(), torch::tensor({1.0, 1.0, 1.0}, torch::kFloat64)});
  const auto structure = analyze_structure(ncf, u);
  EXPECT_LT(structure.layers[0].sv_ratio, 1e-14);
  EXPECT_NEAR(structure.hidden[0].sign_fraction, 2.0 / 3, 1e-15);
  EXPECT_EQ(structure.hidden[0].support, 3);
  EXPECT_NEAR(structure.hidden[0].magnitude_spread, 0.5, 1e-14);
  EXPECT_NEAR(std::abs(structure.input_direction[0]), 0.6, 1e-14);
  // A second direction in W1 breaks rank one: σ₂/σ₁ of [[1, 0], [0, 0.5], [0, 0]] is 0.5.
  auto full = torch::cat({torch::tensor({1.0, 0.0, 0.0, 0.5, 0.0, 0.0}, torch::kFloat64),
                          torch::tensor({1.0, 1.0, 1.0}, torch::kFloat64)});
  const auto broken = analyze_structure(ncf, full);
  EXPECT_NEAR(broken.layers[0].sv_ratio, 0.5, 1e-14);
  EXPECT_FALSE(broken.rank_one);
}

// Depth 3, ReLU² (g = max(z, 0)^4 after two hidden layers) on x = e1 and x = e2 in ℝ³ with
// ȳ = (1, 1): N_b(b) = max(b1, 0)^4 + max(b2, 0)^4 on the sphere has KKT points e1
// (N_b = 1, its maximum) and (e1 + e2)/√2 (N_b = 1/2, a saddle of N_b: still KKT).
TEST(RankOne, ConstructionsFromSingleNeuronKktPointsAreKktPoints) {
  const Ncf ncf(FeedForwardOptions(3, {3, 2}).activation(PolyLeakyReLUOptions().alpha(0).p(2)),
                torch::tensor({{1.0, 0.0, 0.0}, {0.0, 1.0, 0.0}}, torch::kFloat64),
                torch::tensor({1.0, 1.0}, torch::kFloat64));
  ASSERT_EQ(ncf.total_degree(), 7);  // q = (4, 2, 1)
  const std::vector<std::pair<torch::Tensor, double>> kkt_directions = {
      {torch::tensor({1.0, 0.0, 0.0}, torch::kFloat64), 1.0},
      {torch::tensor({1.0, 1.0, 0.0}, torch::kFloat64) / std::sqrt(2.0), 0.5}};
  // Π s_l^(q_l) with s_l² = q_l/L.
  const double scale = std::pow(4.0 / 7, 2.0) * std::pow(2.0 / 7, 1.0) * std::pow(1.0 / 7, 0.5);
  for (const auto& [b, value] : kkt_directions) {
    const auto single = single_neuron_kkt(ncf, b, 1e-6);
    EXPECT_NEAR(single.value, value, 1e-15);
    EXPECT_LT(single.residual, 1e-15);
    const auto u = rank_one_point(ncf, b);
    EXPECT_NEAR(u.norm().item<double>(), 1.0, 1e-15);
    EXPECT_NEAR(ncf.value(u.unsqueeze(0)).item<double>(), scale * value, 1e-15);
    EXPECT_LT(ncf.smooth_residual(u.unsqueeze(0)).item<double>(), 1e-14);
    const auto structure = analyze_structure(ncf, u);
    EXPECT_TRUE(structure.rank_one);
    EXPECT_LT(structure.construction_distance, 1e-14);
    EXPECT_LT(structure.construction_residual, 1e-14);
    EXPECT_TRUE(structure.single_neuron_construction);
  }
  // A negative output layer (chain signs ε = (+1, −1)): g_ε = −g, N_b(e1) = −1, still a KKT
  // point of both problems, and the structure reads the sign off the point.
  const auto flipped = rank_one_point(ncf, kkt_directions[0].first, {}, {1, -1});
  EXPECT_NEAR(ncf.value(flipped.unsqueeze(0)).item<double>(), -scale, 1e-15);
  EXPECT_LT(ncf.smooth_residual(flipped.unsqueeze(0)).item<double>(), 1e-14);
  const auto flipped_structure = analyze_structure(ncf, flipped);
  EXPECT_EQ(flipped_structure.chain_signs, (std::vector<int>{1, -1}));
  EXPECT_NEAR(flipped_structure.single_neuron.value, -1.0, 1e-15);
  EXPECT_TRUE(flipped_structure.single_neuron_construction);
  // Hidden vectors with equal non-zero magnitudes (p > 1) also give KKT points.
  const auto spread = rank_one_point(ncf, kkt_directions[0].first,
                                     {torch::tensor({1.0, 1.0, 0.0}, torch::kFloat64),
                                      torch::tensor({0.0, 1.0}, torch::kFloat64)});
  EXPECT_LT(ncf.smooth_residual(spread.unsqueeze(0)).item<double>(), 1e-14);
  // A b that is not a single-neuron KKT point gives a point that is not a KKT point, and the
  // structure says so though the point is rank one and balanced.
  const auto other = torch::tensor({2.0, 1.0, 0.0}, torch::kFloat64);
  EXPECT_GT(single_neuron_kkt(ncf, other, 1e-6).residual, 0.1);
  const auto u = rank_one_point(ncf, other);
  EXPECT_GT(ncf.smooth_residual(u.unsqueeze(0)).item<double>(), 0.1);
  const auto structure = analyze_structure(ncf, u);
  EXPECT_TRUE(structure.rank_one);
  EXPECT_LT(structure.construction_distance, 1e-14);
  EXPECT_GT(structure.construction_residual, 0.1);
  EXPECT_FALSE(structure.single_neuron_construction);
}

// p = 1, α = −0.5 (σ(z) = z for z > 0, −z/2 for z < 0), one hidden layer, x = e1 with ȳ = 1
// and x = e2 with ȳ = −1: N_b(b) = σ(b1) − σ(b2). At b = e1 the term −σ(b2) has a concave
// kink (slope −1 to the right, +1/2 to the left): b = e1 is a KKT point only in the Clarke
// sense. The smooth residual misses it; the kink-aware one finds it, in the single-neuron
// problem and in the constructed point of the full net.
TEST(RankOne, KinkedSingleNeuronKktPointsAreFoundByTheKinkAwareResidual) {
  const Ncf ncf(FeedForwardOptions(2, {2}).activation(PolyLeakyReLUOptions().alpha(-0.5).p(1)),
                torch::tensor({{1.0, 0.0}, {0.0, 1.0}}, torch::kFloat64),
                torch::tensor({1.0, -1.0}, torch::kFloat64));
  const auto b = torch::tensor({1.0, 0.0}, torch::kFloat64);
  const auto single = single_neuron_kkt(ncf, b, 1e-6);
  EXPECT_NEAR(single.value, 1.0, 1e-15);
  EXPECT_EQ(single.kinks, 1);
  EXPECT_GT(single.residual, 0.1);
  EXPECT_LT(single.kink_residual, 1e-15);
  const auto u = rank_one_point(ncf, b);
  EXPECT_NEAR(ncf.value(u.unsqueeze(0)).item<double>(), 0.5, 1e-15);  // s1·s2 = 1/2
  EXPECT_LT(ncf.kink_residual(u.unsqueeze(0), 1e-6).residual.item<double>(), 1e-14);
  const auto structure = analyze_structure(ncf, u);
  EXPECT_GT(structure.single_neuron_residual, 0.1);
  EXPECT_LT(structure.single_neuron.kink_residual, 1e-15);
  EXPECT_LT(structure.construction_residual, 1e-14);
  EXPECT_TRUE(structure.single_neuron_construction);
  // Moved off the kink (b2 = 0.1 > 0) the kink is gone and so is the KKT point.
  const auto off = single_neuron_kkt(ncf, torch::tensor({1.0, 0.1}, torch::kFloat64), 1e-6);
  EXPECT_EQ(off.kinks, 0);
  EXPECT_GT(off.kink_residual, 0.1);
}

}  // namespace
}  // namespace ncflab
