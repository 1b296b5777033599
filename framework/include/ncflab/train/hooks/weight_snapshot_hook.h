// Copies of w along training, every snapshot_every steps and at the last step, written
// as weights_trajectory.pt: the raw material for figures of how units move.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ncflab/train/hook.h"

namespace ncflab {

/// Keeps a copy of the weights every `every` steps and at the last step: how each unit's
/// weights move (e.g. the angles of a 2-D single-layer net's neurons) is what the paper's
/// figures draw.
class WeightSnapshotHook final : public TrainHook {
 public:
  explicit WeightSnapshotHook(int64_t every) : every_(every) {}
  void on_step(TrainState& state) override;
  int64_t next_step(int64_t step) const override { return (step / every_ + 1) * every_; }
  void on_end(TrainState& state) override;
  /// {"step": [T] int64, "time": [T, count] float64 (each member's t: the gradient flow's
  /// members sit at their own times), "W1": [T, count, k_1, d], …} for members
  /// [first, first + count).
  std::vector<std::pair<std::string, torch::Tensor>> trajectory(int64_t first, int64_t count) const;

 private:
  void take(const TrainState& state);

  int64_t every_;
  std::vector<int64_t> steps_;
  std::vector<std::vector<double>> times_;             // per snapshot, per member
  std::vector<std::vector<torch::Tensor>> snapshots_;  // per snapshot, per layer, float64 CPU
};

}  // namespace ncflab
