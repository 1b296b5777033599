// Structure metrics on directions built by hand: a rank-one point with a known
// hidden vector, a full-rank one, and the single-neuron residual of the input direction.
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

}  // namespace
}  // namespace ncflab
