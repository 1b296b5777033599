// The ATen engines (internal): analytic forward/backward as batched ATen ops over all
// members (any device), and LibTorch autograd through the custom activation (reference).
#pragma once

#include <memory>

#include "ncflab/train/engine.h"

namespace ncflab {

/// Analytic forward/backward as batched ATen ops (CPU or CUDA).
std::unique_ptr<TrainingEngine> make_batched_engine(FeedForward model, torch::Tensor inputs,
                                                    torch::Tensor labels, LossKind loss);

/// Autograd through feedforward_outputs: slow, obviously right.
std::unique_ptr<TrainingEngine> make_autograd_engine(FeedForward model, torch::Tensor inputs,
                                                     torch::Tensor labels, LossKind loss);

}  // namespace ncflab
