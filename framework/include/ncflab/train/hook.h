// The trainer's hook interface: small objects that see the state at chosen steps
// (start, step, end) and may stop members. Hooks that are not configured are not
// installed, so they cost nothing.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "ncflab/train/train_state.h"

namespace ncflab {

/// Columns a hook adds to a metrics row: name → one value per member in `rows`.
using MetricColumns = std::vector<std::pair<std::string, std::vector<double>>>;

/// A column's values on the host: any tensor of per-member values as float64.
inline std::vector<double> host_values(const torch::Tensor& values) {
  const auto host = values.to(torch::kCPU, torch::kFloat64).contiguous();
  return std::vector<double>(host.data_ptr<double>(), host.data_ptr<double>() + host.numel());
}

/// A hook. Every method has a do-nothing default.
class TrainHook {
 public:
  virtual ~TrainHook() = default;
  /// Once, at the first step the trainer runs (k = 0, or the resumed step).
  virtual void on_start(TrainState& state) {}
  /// Every step, after the engine evaluated w_k and before the update.
  virtual void on_step(TrainState& state) {}
  /// The first step after `step` whose on_step this hook needs (with that step's state).
  /// Between such steps the trainer may run gradient descent on the device without
  /// copying the state to the host (no synchronisation per step on CUDA) and calls
  /// on_step only where it copies. The default asks for every step; hooks without an
  /// on_step say never_again.
  virtual int64_t next_step(int64_t step) const { return step + 1; }
  static constexpr int64_t never_again = std::numeric_limits<int64_t>::max();
  /// Names of the metric columns this hook adds, in order (fixed for the run).
  virtual std::vector<std::string> metric_names() const { return {}; }
  /// Values of those columns for members `rows` at a logged step.
  virtual void metrics(const TrainState& state, const std::vector<int64_t>& rows,
                       MetricColumns& columns) {}
  /// Once, after the last step (state is the final one).
  virtual void on_end(TrainState& state) {}
};

}  // namespace ncflab
