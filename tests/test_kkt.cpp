// The KKT search: points found on p = 2, 3 nets satisfy the KKT conditions and the
// balance law; hand-built problems (smooth and at a kink) are solved exactly; starts
// that end at the same point up to a permutation of hidden units are merged.
#include "ncflab/kkt.h"

#include "ncflab/data.h"

#include "support.h"

namespace ncflab {
namespace {

using testing::SeededTest;

class KktSearch : public SeededTest {};

Ncf random_problem(std::vector<int64_t> widths, double alpha, int64_t p, int64_t n, int64_t d) {
  auto data = make_synthetic_data(SyntheticDataOptions().n(n).d(d).seed(7).teacher_activation(
      PolyLeakyReLUOptions().alpha(alpha).p(p)));
  return Ncf(FeedForwardOptions(d, std::move(widths)).activation(PolyLeakyReLUOptions().alpha(alpha).p(p)),
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
                torch::tensor({{1.0, 0.0}}, torch::kFloat64), torch::tensor({1.0}, torch::kFloat64));
  const auto result = search_kkt_points(ncf, KktSearchOptions().restarts(6));
  ASSERT_FALSE(result.points.empty());
  const auto& best = result.points.front();
  EXPECT_NEAR(best.ncf, (2.0 / 3) * std::sqrt(1.0 / 3), 1e-12);
  EXPECT_TRUE(torch::allclose(best.direction,
                              torch::tensor({std::sqrt(2.0 / 3), 0.0, std::sqrt(1.0 / 3)}, torch::kFloat64),
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
  EXPECT_TRUE(torch::allclose(best.direction,
                              torch::tensor({1.0, 0.0, 1.0}, torch::kFloat64) / std::sqrt(2.0), 0, 1e-7));
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
