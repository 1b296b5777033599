// Polynomial Leaky ReLU: closed-form values, homogeneity, the exact derivative
// against finite differences and autograd, and the documented value at the kink.
#include "ncflab/model/activation.h"
#include "support.h"

namespace ncflab {
namespace {

using testing::SeededTest;

torch::Tensor values(std::vector<double> list) { return torch::tensor(list, torch::kFloat64); }

TEST(PolyLeakyReLU, MatchesHandComputedValues) {
  const auto z = values({2.0, -3.0, 0.0, 0.5, -2.0});
  struct Case {
    double alpha;
    int64_t p;
    std::vector<double> expected;
  };
  // σ(z) = max(z,0)^p − α·max(−z,0)^p, evaluated by hand.
  const std::vector<Case> cases = {
      {0.0, 1, {2.0, 0.0, 0.0, 0.5, 0.0}},       // ReLU
      {0.2, 1, {2.0, -0.6, 0.0, 0.5, -0.4}},     // Leaky ReLU
      {0.2, 2, {4.0, -1.8, 0.0, 0.25, -0.8}},    // polynomial Leaky ReLU
      {0.0, 3, {8.0, 0.0, 0.0, 0.125, 0.0}},     // ReLU^3
      {1.0, 3, {8.0, -27.0, 0.0, 0.125, -8.0}},  // odd power sgn(z)|z|^3
      {-1.0, 2, {4.0, 9.0, 0.0, 0.25, 4.0}},     // even power |z|^2
      {0.5, 3, {8.0, -13.5, 0.0, 0.125, -4.0}},
  };
  for (const auto& c : cases) {
    const auto got = poly_leaky_relu(z, PolyLeakyReLUOptions().alpha(c.alpha).p(c.p));
    EXPECT_TRUE(torch::allclose(got, values(c.expected), 0.0, 1e-15))
        << "alpha=" << c.alpha << " p=" << c.p << " got " << got;
  }
}

class ActivationFamilies : public SeededTest,
                           public ::testing::WithParamInterface<std::pair<double, int64_t>> {};

TEST_P(ActivationFamilies, IsPositivelyHomogeneousOfDegreeP) {
  const auto [alpha, p] = GetParam();
  const auto options = PolyLeakyReLUOptions().alpha(alpha).p(p);
  const auto z = torch::randn({200}, torch::kFloat64);
  for (double c : {0.1, 0.7, 3.0, 25.0}) {
    EXPECT_TRUE(torch::allclose(poly_leaky_relu(c * z, options),
                                std::pow(c, p) * poly_leaky_relu(z, options), 1e-13, 1e-15))
        << "c=" << c;
  }
}

TEST_P(ActivationFamilies, DerivativeMatchesCentralFiniteDifferencesAwayFromZero) {
  const auto [alpha, p] = GetParam();
  const auto options = PolyLeakyReLUOptions().alpha(alpha).p(p);
  auto z = torch::randn({200}, torch::kFloat64);
  z = z + 0.2 * torch::sign(z);  // keep |z| ≥ 0.2, away from the kink
  const double h = 1e-6;
  const auto finite_difference =
      (poly_leaky_relu(z + h, options) - poly_leaky_relu(z - h, options)) / (2 * h);
  EXPECT_TRUE(
      torch::allclose(poly_leaky_relu_derivative(z, options), finite_difference, 1e-7, 1e-8));
}

TEST_P(ActivationFamilies, AutogradUsesTheExactDerivative) {
  const auto [alpha, p] = GetParam();
  const auto options = PolyLeakyReLUOptions().alpha(alpha).p(p);
  auto z = torch::randn({50}, torch::kFloat64).requires_grad_(true);
  const auto weights = torch::randn({50}, torch::kFloat64);
  (poly_leaky_relu(z, options) * weights).sum().backward();
  EXPECT_TRUE(torch::allclose(z.grad(), weights * poly_leaky_relu_derivative(z.detach(), options),
                              1e-15, 1e-15));
}

TEST_P(ActivationFamilies, DoubleBackwardGivesTheSecondDerivative) {
  const auto [alpha, p] = GetParam();
  const auto options = PolyLeakyReLUOptions().alpha(alpha).p(p);
  auto z = (torch::randn({50}, torch::kFloat64) * 2).requires_grad_(true);
  if (p == 1) {
    // σ' is piecewise constant: its graph does not depend on z at all.
    const auto first = torch::autograd::grad({poly_leaky_relu(z, options).sum()}, {z}, {},
                                             /*retain_graph=*/true, /*create_graph=*/true)[0];
    EXPECT_FALSE(first.requires_grad());
    return;
  }
  const auto first = torch::autograd::grad({poly_leaky_relu(z, options).sum()}, {z}, {},
                                           /*retain_graph=*/true, /*create_graph=*/true)[0];
  const auto second = torch::autograd::grad({first.sum()}, {z})[0];
  // σ''(z) = p(p−1)z^(p−2) for z > 0 and −α·p(p−1)(−z)^(p−2) for z < 0.
  const auto zd = z.detach();
  const double pp = static_cast<double>(p * (p - 1));
  const auto expected =
      torch::where(zd > 0, pp * zd.abs().pow(p - 2), -alpha * pp * zd.abs().pow(p - 2));
  EXPECT_TRUE(torch::allclose(second, expected, 1e-13, 1e-13));
}

INSTANTIATE_TEST_SUITE_P(AllFamilies, ActivationFamilies,
                         ::testing::Values(std::make_pair(0.0, 1), std::make_pair(0.2, 1),
                                           std::make_pair(-0.5, 1), std::make_pair(0.2, 2),
                                           std::make_pair(0.0, 3), std::make_pair(1.0, 3),
                                           std::make_pair(-1.0, 2), std::make_pair(0.7, 4)));

TEST(PolyLeakyReLU, KinkSlopeIsAlphaLikePyTorch) {
  // At z = 0 with p = 1 the derivative is α: what torch's leaky_relu backward gives.
  for (double alpha : {0.0, 0.2, 0.5}) {
    auto z = torch::zeros({1}, torch::kFloat64).requires_grad_(true);
    torch::leaky_relu(z, alpha).sum().backward();
    const auto options = PolyLeakyReLUOptions().alpha(alpha).p(1);
    EXPECT_EQ(
        poly_leaky_relu_derivative(torch::zeros({1}, torch::kFloat64), options).item<double>(),
        z.grad().item<double>());
  }
  // For p ≥ 2 the derivative is continuous and 0 at the origin.
  EXPECT_EQ(poly_leaky_relu_derivative(torch::zeros({1}, torch::kFloat64),
                                       PolyLeakyReLUOptions().alpha(0.3).p(2))
                .item<double>(),
            0.0);
}

TEST(PolyLeakyReLU, ModuleRejectsOptionsOutOfRange) {
  EXPECT_THROW(PolyLeakyReLU(PolyLeakyReLUOptions().alpha(1.5)), c10::Error);
  EXPECT_THROW(PolyLeakyReLU(PolyLeakyReLUOptions().alpha(-1.01)), c10::Error);
  EXPECT_THROW(PolyLeakyReLU(PolyLeakyReLUOptions().p(0)), c10::Error);
  PolyLeakyReLU module(PolyLeakyReLUOptions().alpha(0.2).p(3));
  EXPECT_EQ(module->degree(), 3);
  std::ostringstream printed;
  module->pretty_print(printed);
  EXPECT_EQ(printed.str(), "ncflab::PolyLeakyReLU(alpha=0.2, p=3)");
}

TEST(PolyLeakyReLU, DescribesEachFamily) {
  EXPECT_EQ(describe_activation(PolyLeakyReLUOptions()), "ReLU");
  EXPECT_EQ(describe_activation(PolyLeakyReLUOptions().alpha(0.1)), "Leaky ReLU (alpha=0.1)");
  EXPECT_EQ(describe_activation(PolyLeakyReLUOptions().p(2)), "ReLU^2");
  EXPECT_EQ(describe_activation(PolyLeakyReLUOptions().alpha(-1).p(2)), "even power |z|^2");
}

}  // namespace
}  // namespace ncflab
