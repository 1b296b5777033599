// Copies of w along training, every snapshot_every steps and at the last step, written
// as weights_trajectory.pt: the raw material for figures of how units move.
#include "ncflab/train/hooks/weight_snapshot_hook.h"

#include "ncflab/model/feedforward.h"

namespace ncflab {

void WeightSnapshotHook::take(const TrainState& state) {
  if (!steps_.empty() && steps_.back() == state.step) return;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> copy;
  for (const auto& w : *state.weights) copy.push_back(w.to(torch::kCPU, torch::kFloat64).clone());
  steps_.push_back(state.step);
  times_.push_back(state.times);
  snapshots_.push_back(std::move(copy));
}

void WeightSnapshotHook::on_step(TrainState& state) {
  if (state.step % every_ == 0) take(state);
}

void WeightSnapshotHook::on_end(TrainState& state) { take(state); }

std::vector<std::pair<std::string, torch::Tensor>> WeightSnapshotHook::trajectory(
    int64_t first, int64_t count) const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  out.emplace_back("step", torch::tensor(steps_, torch::kLong));
  if (snapshots_.empty()) return out;
  std::vector<torch::Tensor> times;
  for (const auto& row : times_) {
    times.push_back(torch::tensor(row, torch::kFloat64).narrow(0, first, count));
  }
  out.emplace_back("time", torch::stack(times));
  for (size_t l = 0; l < snapshots_.front().size(); ++l) {
    std::vector<torch::Tensor> layer;
    for (const auto& snapshot : snapshots_) layer.push_back(snapshot[l].narrow(0, first, count));
    out.emplace_back(layer_name(l), torch::stack(layer));
  }
  return out;
}

}  // namespace ncflab
