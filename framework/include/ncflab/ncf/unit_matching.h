// Hidden units of a feed-forward net can be permuted without changing H; comparing two
// directions (training's û and a KKT point) means first lining their units up.
#pragma once

#include <torch/torch.h>

#include "ncflab/model/feedforward.h"

namespace ncflab {

/// `point` [P] with its hidden units permuted, layer by layer from the input, to line up
/// with `reference` [P]: units are matched greedily by the cosine of their incoming rows
/// (after the previous layer's permutation), highest first. `options` give the layer
/// shapes and which layers have units (W1 of a single-layer model too). float64 CPU in,
/// float64 CPU out.
torch::Tensor align_hidden_units(const torch::Tensor& reference, const torch::Tensor& point,
                                 const FeedForwardOptions& options);

}  // namespace ncflab
