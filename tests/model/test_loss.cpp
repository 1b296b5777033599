// Losses: closed-form values, output gradients against autograd, the NCF labels
// as −∂ℓ/∂H at H = 0, and the ±1 label rule of the logistic loss.
#include "ncflab/core/errors.h"
#include "ncflab/model/loss.h"
#include "support.h"

namespace ncflab {
namespace {

using testing::SeededTest;

class Losses : public SeededTest, public ::testing::WithParamInterface<LossKind> {};

TEST(LossValues, MatchClosedForms) {
  const auto outputs = torch::tensor({{0.5, -1.0, 2.0}}, torch::kFloat64);
  const auto labels = torch::tensor({1.0, -1.0, -1.0}, torch::kFloat64);
  // ½[(0.5−1)² + 0² + 3²] = ½(0.25 + 9) = 4.625
  EXPECT_NEAR(loss_value(LossKind::square, outputs, labels).item<double>(), 4.625, 1e-15);
  const double logistic =
      std::log1p(std::exp(-0.5)) + std::log1p(std::exp(-1.0)) + std::log1p(std::exp(2.0));
  EXPECT_NEAR(loss_value(LossKind::logistic, outputs, labels).item<double>(), logistic, 1e-14);
  // Large margins stay exact instead of overflowing: log(1 + e^−800) ≈ e^−800 → 0, log(1 + e^800) =
  // 800.
  const auto extreme = torch::tensor({{800.0, -800.0}}, torch::kFloat64);
  EXPECT_NEAR(loss_value(LossKind::logistic, extreme, torch::tensor({1.0, 1.0}, torch::kFloat64))
                  .item<double>(),
              800.0, 1e-12);
}

TEST_P(Losses, OutputGradientMatchesAutograd) {
  const auto labels = torch::randint(0, 2, {20}, torch::kFloat64) * 2 - 1;
  auto outputs = torch::randn({3, 20}, torch::kFloat64).requires_grad_(true);
  loss_value(GetParam(), outputs, labels).sum().backward();
  EXPECT_TRUE(torch::allclose(
      outputs.grad(), loss_output_gradient(GetParam(), outputs.detach(), labels), 1e-14, 1e-15));
}

TEST_P(Losses, NcfLabelsAreMinusTheGradientAtZero) {
  const auto labels = torch::randint(0, 2, {15}, torch::kFloat64) * 2 - 1;
  auto outputs = torch::zeros({1, 15}, torch::kFloat64).requires_grad_(true);
  loss_value(GetParam(), outputs, labels).sum().backward();
  EXPECT_TRUE(torch::allclose(ncf_labels(GetParam(), labels), -outputs.grad()[0], 1e-15, 0));
}

INSTANTIATE_TEST_SUITE_P(Both, Losses, ::testing::Values(LossKind::square, LossKind::logistic),
                         [](const auto& param_info) { return loss_name(param_info.param); });

TEST(LossLabels, LogisticNeedsPlusMinusOne) {
  const auto good = torch::tensor({1.0, -1.0, 1.0}, torch::kFloat64);
  const auto bad = torch::tensor({1.0, 0.0, 1.0}, torch::kFloat64);
  EXPECT_NO_THROW(check_labels(LossKind::logistic, good, "d.csv", "y"));
  EXPECT_NO_THROW(check_labels(LossKind::square, bad, "d.csv", "y"));
  try {
    check_labels(LossKind::logistic, bad, "d.csv", "y");
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_THAT(std::string(e.what()),
                ::testing::HasSubstr("d.csv: label 'y': expected labels in {-1, +1}"));
    EXPECT_THAT(std::string(e.what()), ::testing::HasSubstr("found 0 in row 2"));
  }
}

}  // namespace
}  // namespace ncflab
