// Checkpoints of a training run: the weights w_k and everything the trainer needs to
// continue from step k bit for bit, in one file Python's torch.load also reads.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <vector>

#include "ncflab/train/train_state.h"

namespace ncflab {

struct Checkpoint {
  TrainState state;                    ///< step, statuses, escapes, per-member statistics
  std::vector<torch::Tensor> weights;  ///< W_l at w_k, [S, k_l, k_{l−1}], float64 CPU
};

/// Writes {"W1".., "step", "status", "active", "steps_done", "escape_*", "loss", "norm",
/// "gradient_norm", "time", "evaluations", "finished_now"} and, for a gradient-flow state,
/// its restart record ("flow_*") atomically (temporary file + rename).
void save_checkpoint(const std::filesystem::path& path, const TrainState& state,
                     const std::vector<torch::Tensor>& weights);

/// Reads a checkpoint written by save_checkpoint. Throws InputError naming the file when
/// it is missing, unreadable, lacks a key, or its weights are not [members, k_l, k_{l−1}]
/// for the given layer shapes [k_l, k_{l−1}].
Checkpoint load_checkpoint(const std::filesystem::path& path, int64_t members,
                           const std::vector<std::vector<int64_t>>& layer_shapes);

}  // namespace ncflab
