// The ensemble feed-forward net and the single-layer model: degrees, hand-computed forward
// passes, homogeneity, Euler's identity (whole and per layer), ensemble = separate runs,
// flattening, init.
#include "ncflab/model/feedforward.h"
#include "support.h"

namespace ncflab {
namespace {

using testing::NetCase;
using testing::SeededTest;

FeedForward make_net(const NetCase& c, int64_t d, int64_t members = 1, uint64_t seed = 0) {
  return FeedForward(testing::model_options(c, d).members(members).seed(seed));
}

TEST(LayerDegrees, FollowTheClosedForm) {
  // q_l = p^(K−l): SPEC §1's example p = 2, K = 3 has L = 4 + 2 + 1 = 7.
  EXPECT_EQ(layer_degrees(3, 2), (std::vector<int64_t>{4, 2, 1}));
  EXPECT_EQ(layer_degrees(2, 1), (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(layer_degrees(2, 3), (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(layer_degrees(4, 3), (std::vector<int64_t>{27, 9, 3, 1}));
  FeedForward net(FeedForwardOptions(4, {5, 5}).activation(PolyLeakyReLUOptions().p(2)));
  EXPECT_EQ(net->total_degree(), 7);
  FeedForward leaky(FeedForwardOptions(4, {5, 5, 5}).activation(PolyLeakyReLUOptions().alpha(0.1)));
  EXPECT_EQ(leaky->total_degree(), 4);  // p = 1: L = K
}

TEST(LayerDegrees, SingleLayerModelHasOneLayerOfDegreeP) {
  // H = Σ_j σ(w_jᵀx): W1 is the only weight tensor, H(c·w) = c^p H(w), so L = p.
  for (int64_t p : {1, 2, 3}) {
    auto options = FeedForwardOptions(4, {6})
                       .kind(ModelKind::single_layer)
                       .activation(PolyLeakyReLUOptions().p(p));
    EXPECT_EQ(layer_degrees(options), (std::vector<int64_t>{p}));
    EXPECT_EQ(layer_shapes(options), (std::vector<std::vector<int64_t>>{{6, 4}}));
    FeedForward net(options.members(2));
    EXPECT_EQ(net->total_degree(), p);
    EXPECT_EQ(net->depth(), 1);
    EXPECT_EQ(net->hidden_layers(), 1);
    EXPECT_EQ(net->parameters_per_member(), 24);
    ASSERT_EQ(net->named_parameters().size(), 1u);
    EXPECT_EQ(net->named_parameters()["W1"].sizes(), (std::vector<int64_t>{2, 6, 4}));
  }
}

TEST(FeedForward, SingleLayerModelMatchesAHandComputedSum) {
  FeedForward net(FeedForwardOptions(2, {2})
                      .kind(ModelKind::single_layer)
                      .activation(PolyLeakyReLUOptions().alpha(0.2).p(2)));
  // W1 = [[1, −1], [2, 0]], x = (1, 2): z = (−1, 2), σ(z) = (−0.2, 4), H = 3.8.
  net->load_flat(torch::tensor({{1.0, -1.0, 2.0, 0.0}}, torch::kFloat64));
  const auto h = net->forward(torch::tensor({{1.0, 2.0}}, torch::kFloat64));
  ASSERT_EQ(h.sizes(), (std::vector<int64_t>{1, 1}));
  EXPECT_NEAR(h.item<double>(), 3.8, 1e-15);
}

TEST(FeedForward, SingleLayerModelSumsItsUnitsOverTheEnsemble) {
  torch::manual_seed(8);
  const auto activation = PolyLeakyReLUOptions().alpha(-0.4).p(3);
  FeedForward net(
      FeedForwardOptions(5, {7}).kind(ModelKind::single_layer).activation(activation).members(3));
  const auto inputs = torch::randn({11, 5}, torch::kFloat64);
  const auto w = net->weights()[0];  // [S, k, d]
  // Σ_j σ(w_jᵀx_i), unit by unit, member by member.
  auto expected = torch::zeros({3, 11}, torch::kFloat64);
  for (int64_t s = 0; s < 3; ++s) {
    for (int64_t j = 0; j < 7; ++j) {
      expected[s] += poly_leaky_relu(torch::matmul(inputs, w[s][j]), activation);
    }
  }
  EXPECT_TRUE(torch::allclose(net->forward(inputs), expected, 1e-13, 1e-300));
}

TEST(FeedForward, MatchesAHandComputedTwoLayerNet) {
  FeedForward net(FeedForwardOptions(2, {2}).activation(PolyLeakyReLUOptions().alpha(0.2).p(2)));
  // W1 = [[1, −1], [2, 0]], v = [1, −1], x = (1, 2): z = (−1, 2), σ(z) = (−0.2, 4), H = −4.2.
  net->load_flat(torch::tensor({{1.0, -1.0, 2.0, 0.0, 1.0, -1.0}}, torch::kFloat64));
  const auto h = net->forward(torch::tensor({{1.0, 2.0}}, torch::kFloat64));
  ASSERT_EQ(h.sizes(), (std::vector<int64_t>{1, 1}));
  EXPECT_NEAR(h.item<double>(), -4.2, 1e-15);
}

class NetInvariants : public SeededTest, public ::testing::WithParamInterface<NetCase> {};

TEST_P(NetInvariants, OutputIsHomogeneousOfTotalDegreeL) {
  const auto net = make_net(GetParam(), 6);
  const int64_t total = net->total_degree();
  const auto weights = testing::random_weights(*net, 3);
  const auto inputs = torch::randn({40, 6}, torch::kFloat64);
  const auto base = feedforward_outputs(weights, inputs, net->options);
  for (double c : {0.5, 0.9, 1.7, 3.0}) {
    std::vector<torch::Tensor> scaled;
    for (const auto& w : weights) scaled.push_back(c * w);
    const auto expected = std::pow(c, static_cast<double>(total)) * base;
    EXPECT_TRUE(torch::allclose(feedforward_outputs(scaled, inputs, net->options), expected, 1e-11,
                                1e-12 * expected.abs().max().item<double>()))
        << "c=" << c << " L=" << total;
  }
}

TEST_P(NetInvariants, EulersIdentityHoldsWholeAndPerLayer) {
  const auto net = make_net(GetParam(), 5);
  const auto degrees = net->degrees();
  auto weights = testing::random_weights(*net, 4);
  // u on the unit sphere per member, as the constrained NCF uses it.
  torch::Tensor norms_sq = torch::zeros({4}, torch::kFloat64);
  for (const auto& w : weights) norms_sq += w.square().sum({1, 2});
  for (auto& w : weights) w = (w / norms_sq.sqrt().view({4, 1, 1})).requires_grad_(true);
  const auto inputs = torch::randn({30, 5}, torch::kFloat64);
  const auto ybar = torch::randn({30}, torch::kFloat64);
  const auto ncf = testing::ncf_value(weights, inputs, ybar, net->options);
  const auto grads = torch::autograd::grad({ncf.sum()}, weights);

  torch::Tensor euler = torch::zeros({4}, torch::kFloat64);
  for (size_t l = 0; l < weights.size(); ++l) {
    const auto layer = (grads[l] * weights[l].detach()).sum({1, 2});
    // ⟨∇_{W_l}N, W_l⟩ = q_l·N
    EXPECT_TRUE(
        torch::allclose(layer, static_cast<double>(degrees[l]) * ncf.detach(), 1e-10, 1e-13))
        << "layer " << l + 1;
    euler += layer;
  }
  // ⟨∇N(u), u⟩ = L·N(u)
  EXPECT_TRUE(torch::allclose(euler, static_cast<double>(net->total_degree()) * ncf.detach(), 1e-10,
                              1e-13));
}

TEST_P(NetInvariants, EnsembleEqualsSeparateEvaluations) {
  const auto c = GetParam();
  auto ensemble = make_net(c, 6, /*members=*/3, /*seed=*/11);
  const auto inputs = torch::randn({25, 6}, torch::kFloat64);
  const auto together = ensemble->forward(inputs);
  ASSERT_EQ(together.sizes(), (std::vector<int64_t>{3, 25}));
  for (int64_t s = 0; s < 3; ++s) {
    // Member s of seed 11 is member 0 of seed 11 + s.
    auto single = make_net(c, 6, /*members=*/1, /*seed=*/11 + static_cast<uint64_t>(s));
    EXPECT_TRUE(torch::equal(single->flatten()[0], ensemble->flatten()[s]));
    EXPECT_TRUE(torch::allclose(single->forward(inputs)[0], together[s], 1e-13, 1e-300));
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, NetInvariants, ::testing::ValuesIn(testing::net_cases()),
                         testing::case_name);

TEST(FeedForward, FlattenAndUnflattenAreInverse) {
  FeedForward net(FeedForwardOptions(3, {4, 2}).members(2));
  EXPECT_EQ(net->parameters_per_member(), 4 * 3 + 2 * 4 + 1 * 2);
  const auto flat = torch::randn({2, net->parameters_per_member()}, torch::kFloat64);
  net->load_flat(flat);
  EXPECT_TRUE(torch::equal(net->flatten(), flat));
  const auto layers = net->unflatten(flat);
  ASSERT_EQ(layers.size(), 3u);
  EXPECT_EQ(layers[0].sizes(), (std::vector<int64_t>{2, 4, 3}));
  EXPECT_EQ(layers[2].sizes(), (std::vector<int64_t>{2, 1, 2}));
  EXPECT_TRUE(torch::equal(layers[1][1], flat[1].narrow(0, 12, 8).view({2, 4})));
  EXPECT_TRUE(torch::equal(net->named_parameters()["W2"], layers[1]));
  EXPECT_EQ(net->unflatten(flat[0])[0].sizes(), (std::vector<int64_t>{1, 4, 3}));
}

TEST(FeedForward, InitIsDeltaTimesAUnitGaussianDirection) {
  const double delta = 1e-3;
  FeedForward net(FeedForwardOptions(10, {20, 5}).members(4).init_scale(delta).seed(7));
  const auto norms = net->flatten().norm(2, 1);
  EXPECT_TRUE(torch::allclose(norms, torch::full({4}, delta, torch::kFloat64), 1e-14, 0));
  // Deterministic for (seed, member), and distinct across members and seeds.
  FeedForward again(FeedForwardOptions(10, {20, 5}).members(4).init_scale(delta).seed(7));
  EXPECT_TRUE(torch::equal(net->flatten(), again->flatten()));
  EXPECT_FALSE(torch::equal(net->flatten()[0], net->flatten()[1]));
  FeedForward other(FeedForwardOptions(10, {20, 5}).members(4).init_scale(delta).seed(8));
  EXPECT_TRUE(torch::equal(other->flatten()[0], net->flatten()[1]));  // seed + s
  // One δ per member scales the same directions.
  net->initialize(torch::tensor({1e-1, 1e-2, 1e-3, 1e-4}, torch::kFloat64), 7);
  EXPECT_TRUE(torch::allclose(net->flatten()[3] * 1e4, again->flatten()[3] * 1e3, 1e-14, 0));
  // w0's entries look Gaussian: mean within 4 standard errors of 0, and ‖w0‖ = 1.
  const auto w0 = unit_gaussian_directions(1, 10000, 3)[0];
  EXPECT_NEAR(w0.mean().item<double>(), 0.0, 4.0 / 10000);
  EXPECT_NEAR(w0.norm().item<double>(), 1.0, 1e-14);
}

TEST(FeedForward, Float32ModelSeesTheSameDirections) {
  FeedForward wide(FeedForwardOptions(4, {3}).seed(2).dtype(torch::kFloat64));
  FeedForward narrow(FeedForwardOptions(4, {3}).seed(2).dtype(torch::kFloat32));
  EXPECT_EQ(narrow->flatten().scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::allclose(narrow->flatten().to(torch::kFloat64), wide->flatten(), 1e-7, 0));
}

TEST(FeedForward, RejectsBadOptions) {
  EXPECT_THROW(FeedForward(FeedForwardOptions(3, {})), c10::Error);
  EXPECT_THROW(FeedForward(FeedForwardOptions(3, {4, 0})), c10::Error);
  EXPECT_THROW(FeedForward(FeedForwardOptions(0, {4})), c10::Error);
  EXPECT_THROW(FeedForward(FeedForwardOptions(3, {4}).members(0)), c10::Error);
  EXPECT_THROW(FeedForward(FeedForwardOptions(3, {4}).init_scale(0.0)), c10::Error);
  EXPECT_THROW(FeedForward(FeedForwardOptions(3, {4}).activation(PolyLeakyReLUOptions().p(0))),
               c10::Error);
  // A single-layer model has exactly one hidden width.
  EXPECT_THROW(FeedForward(FeedForwardOptions(3, {4, 4}).kind(ModelKind::single_layer)),
               c10::Error);
  EXPECT_THROW(FeedForward(FeedForwardOptions(3, {}).kind(ModelKind::single_layer)), c10::Error);
}

}  // namespace
}  // namespace ncflab
