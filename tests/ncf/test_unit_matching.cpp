// Lining up hidden units: a permuted copy of a direction is recovered exactly, and the
// permutation never changes the network's outputs.
#include "ncflab/ncf/unit_matching.h"
#include "support.h"

namespace ncflab {
namespace {

TEST(UnitMatching, RecoversAPermutedCopyAndKeepsTheOutputs) {
  torch::manual_seed(5);
  const auto options = FeedForwardOptions(3, {6, 4});
  const auto shapes = layer_shapes(options);
  ASSERT_EQ(shapes, (std::vector<std::vector<int64_t>>{{6, 3}, {4, 6}, {1, 4}}));
  const auto layers = split_layers(torch::randn({1, 6 * 3 + 4 * 6 + 4}, torch::kFloat64), shapes);
  // Permute the 6 units of layer 1 and the 4 of layer 2 (rows of W_l, columns of W_{l+1}).
  const auto first = torch::randperm(6, torch::kLong);
  const auto second = torch::randperm(4, torch::kLong);
  const auto w1 = layers[0].index_select(1, first);
  const auto w2 = layers[1].index_select(2, first).index_select(1, second);
  const auto w3 = layers[2].index_select(2, second);
  const auto original = join_layers(layers)[0];
  const auto permuted = join_layers({w1, w2, w3})[0];
  ASSERT_GT((original - permuted).abs().max().item<double>(), 1e-3);
  const auto aligned = align_hidden_units(original, permuted, options);
  EXPECT_TRUE(torch::allclose(aligned, original, 0, 1e-15));

  const auto inputs = torch::randn({7, 3}, torch::kFloat64);
  const auto before =
      feedforward_outputs(split_layers(permuted.unsqueeze(0), shapes), inputs, options);
  const auto after =
      feedforward_outputs(split_layers(aligned.unsqueeze(0), shapes), inputs, options);
  EXPECT_TRUE(torch::allclose(before, after, 1e-13, 1e-13));
}

TEST(UnitMatching, LinesUpTheUnitsOfASingleLayerModel) {
  torch::manual_seed(6);
  const auto options = FeedForwardOptions(3, {5}).kind(ModelKind::single_layer);
  const auto original = torch::randn({5 * 3}, torch::kFloat64);
  const auto order = torch::randperm(5, torch::kLong);
  const auto permuted = original.view({5, 3}).index_select(0, order).flatten();
  ASSERT_GT((original - permuted).abs().max().item<double>(), 1e-3);
  const auto aligned = align_hidden_units(original, permuted, options);
  EXPECT_TRUE(torch::equal(aligned, original));
  const auto inputs = torch::randn({7, 3}, torch::kFloat64);
  const auto shapes = layer_shapes(options);
  EXPECT_TRUE(torch::allclose(feedforward_outputs(split_layers(permuted, shapes), inputs, options),
                              feedforward_outputs(split_layers(aligned, shapes), inputs, options),
                              1e-13, 1e-13));
}

}  // namespace
}  // namespace ncflab
