// The trainer's hook interface: small objects that see the state at chosen steps
// (start, step, end) and may stop members. Hooks that are not configured are not
// installed, so they cost nothing.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ncflab {

/// How a member's training ended ("running" while it goes on).
enum class MemberStatus { running, escaped, max_steps, diverged, interrupted };

/// "running", "escaped", "max_steps", "diverged", "interrupted".
const char* member_status_name(MemberStatus status);

/// When a member escaped: the first k with ‖w_k‖ ≥ r_esc.
struct EscapeRecord {
  int64_t step = -1;           ///< k (−1: not escaped)
  double time = 0;             ///< t = k·η
  double rescaled_time = 0;    ///< δ^(L−2)·t (L = 2: t itself)
  double norm = 0;             ///< ‖w_k‖
};

/// What the trainer knows at step k, before the update that makes w_{k+1}.
struct TrainState {
  int64_t step = 0;         ///< k
  double step_size = 0;     ///< η
  double time = 0;          ///< t = k·η
  std::vector<double> deltas;                 ///< δ per member
  const std::vector<torch::Tensor>* weights = nullptr;    ///< W_l at w_k, [S, k_l, k_{l−1}]
  const std::vector<torch::Tensor>* gradients = nullptr;  ///< ∇ℓ(w_k), same shapes
  std::vector<double> loss;           ///< ℓ(w_k) per member
  std::vector<double> norm;           ///< ‖w_k‖ per member
  std::vector<double> gradient_norm;  ///< ‖∇ℓ(w_k)‖ per member
  std::vector<uint8_t> active;        ///< members still being updated
  std::vector<MemberStatus> status;   ///< per member
  std::vector<EscapeRecord> escape;   ///< per member
  std::vector<int64_t> steps_done;    ///< updates applied to each member so far
  /// Members whose status became final at this step (they get a last metrics row).
  std::vector<int64_t> finished_now;

  int64_t members() const { return static_cast<int64_t>(active.size()); }
  /// Marks member s finished with `why` at this step (no more updates).
  void finish(int64_t s, MemberStatus why);
};

/// Columns a hook adds to a metrics row: name → one value per member in `rows`.
using MetricColumns = std::vector<std::pair<std::string, std::vector<double>>>;

/// A hook. Every method has a do-nothing default.
class TrainHook {
 public:
  virtual ~TrainHook() = default;
  /// Once, at the first step the trainer runs (k = 0, or the resumed step).
  virtual void on_start(TrainState& state) {}
  /// Every step, after the engine evaluated w_k and before the update.
  virtual void on_step(TrainState& state) {}
  /// Names of the metric columns this hook adds, in order (fixed for the run).
  virtual std::vector<std::string> metric_names() const { return {}; }
  /// Values of those columns for members `rows` at a logged step.
  virtual void metrics(const TrainState& state, const std::vector<int64_t>& rows,
                       MetricColumns& columns) {}
  /// Once, after the last step (state is the final one).
  virtual void on_end(TrainState& state) {}
};

}  // namespace ncflab
