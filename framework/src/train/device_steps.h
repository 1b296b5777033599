// Gradient-descent steps between two host synchronisations (internal): the trainer's
// per-step checks (divergence, then escape) as tensor ops on the weights' device, finished
// members frozen by a mask, so a CUDA run waits for the GPU once per chunk of steps
// instead of once per step. Optionally each step is a replayed CUDA graph.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "ncflab/train/engine.h"
#include "ncflab/train/train_state.h"

namespace ncflab {

class DeviceSteps {
 public:
  /// Steps of `engine` (which must run_on_device()) with step size η and the trainer's
  /// escape rule; `cuda_graph`: capture one step as a CUDA graph and replay it (CUDA
  /// LibTorch and a CUDA device only; otherwise ignored).
  DeviceSteps(TrainingEngine& engine, int64_t members, double step_size, double escape_radius,
              bool stop_at_escape, bool cuda_graph);
  ~DeviceSteps();

  /// From step k, evaluated and checked on the host (`active`, `escape`: its members):
  /// the update to w_{k+1}, then for k' = k+1 … until−1 the evaluation, the checks and
  /// the update of the members still running. Leaves the weights at w_until (frozen
  /// members at the step they finished) and the engine's gradients at until−1.
  StepChunk run(int64_t k, int64_t until, const std::vector<uint8_t>& active,
                const std::vector<EscapeRecord>& escape);

  /// Whether the steps are replayed from a captured CUDA graph (after the first few).
  bool uses_cuda_graph() const;

 private:
  /// One step: evaluate at step_+1, check, update. Touches only the tensors below in
  /// place, so a CUDA graph of it stays valid across chunks.
  void step();
  /// step(), eagerly or by replaying (capturing it first) the CUDA graph.
  void next_step();

  TrainingEngine& engine_;
  double step_size_;
  double escape_radius_;
  bool stop_at_escape_;
  torch::Tensor step_;         ///< [] int64: the k of the last evaluation
  torch::Tensor scale_;        ///< [S] η for running members, 0 for frozen ones (weights' dtype)
  torch::Tensor escaped_;      ///< [S] bool: has an escape record
  torch::Tensor finish_step_;  ///< [S] int64
  torch::Tensor diverged_;     ///< [S] bool
  torch::Tensor escape_step_;  ///< [S] int64
  torch::Tensor escape_norm_;  ///< [S] float64
  torch::Tensor loss_, norm_, gradient_norm_;  ///< [S] float64, at each member's last step
  struct Graph;
  std::unique_ptr<Graph> graph_;  ///< CUDA builds on a CUDA device only
};

}  // namespace ncflab
