// The fused CPU engine (internal): forward, loss, backward and update of each member
// in plain loops over contiguous memory, without a single ATen op per step.
#pragma once

#include <memory>

#include "ncflab/train/engine.h"

namespace ncflab {

/// A fused engine for `model` (CPU, float32 or float64, contiguous weights).
std::unique_ptr<TrainingEngine> make_fused_engine(FeedForward model, torch::Tensor inputs,
                                                  torch::Tensor labels, LossKind loss);

}  // namespace ncflab
