// What the training loop knows at an iteration: per-member statistics, statuses and
// escape records. Hooks read it; checkpoints save it; summaries report it.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace ncflab {

/// How a member's training ended ("running" while it goes on).
enum class MemberStatus { running, escaped, max_steps, diverged, interrupted };

/// "running", "escaped", "max_steps", "diverged", "interrupted".
const char* member_status_name(MemberStatus status);

/// When a member escaped: the first k with ‖w_k‖ ≥ r_esc (gradient descent), or the time
/// t at which ‖w(t)‖ = r_esc (gradient flow).
struct EscapeRecord {
  int64_t step = -1;  ///< k, or the flow's accepted steps up to the crossing (−1: not escaped)
  double time = 0;    ///< t = k·η, or the crossing time
  double rescaled_time = 0;  ///< δ^(L−2)·t (L = 2: t itself)
  double norm = 0;           ///< ‖w_k‖
};

/// Where each member's gradient-flow integration stands, enough to continue it bit for bit:
/// the start of its last accepted step, which a resumed run takes again.
struct FlowRestart {
  torch::Tensor start;                   ///< [S, P] w there (w_0 before any step)
  std::vector<double> start_time;        ///< t there (high part of the double-double)
  std::vector<double> start_time_low;    ///< its low part
  std::vector<double> step_size;         ///< that step's h (before any step: the first trial h)
  std::vector<uint8_t> after_rejection;  ///< whether the trial before it was rejected
  std::vector<double> previous_error;    ///< the accepted step before it: error / tolerance
  std::vector<double> previous_step;     ///< and h (0: none)
  std::vector<int64_t> rejected;         ///< rejected trials so far
  std::vector<double> stiff_time;        ///< t where the flow became stiff (NaN: not seen)
  std::vector<int64_t> stiff_steps;      ///< consecutive stability-limited steps so far
};

/// What the trainer knows at an iteration: gradient descent's step k, before the update
/// that makes w_{k+1}, or gradient flow's metrics row j (each member at its row time).
struct TrainState {
  int64_t step = 0;                                       ///< k, or the flow's row j
  std::vector<double> times;                              ///< t of each member's weights
  std::vector<double> deltas;                             ///< δ per member
  const std::vector<torch::Tensor>* weights = nullptr;    ///< W_l at w_k, [S, k_l, k_{l−1}]
  const std::vector<torch::Tensor>* gradients = nullptr;  ///< ∇ℓ(w_k), same shapes
  std::vector<double> loss;                               ///< ℓ(w_k) per member
  std::vector<double> norm;                               ///< ‖w_k‖ per member
  std::vector<double> gradient_norm;                      ///< ‖∇ℓ(w_k)‖ per member
  std::vector<uint8_t> active;                            ///< members still being updated
  std::vector<MemberStatus> status;                       ///< per member
  std::vector<EscapeRecord> escape;                       ///< per member
  std::vector<int64_t> steps_done;  ///< updates (accepted flow steps) applied to each member so far
  std::vector<int64_t> evaluations;  ///< gradient evaluations per member so far
  /// Gradient flow: where each member's integration stands (null for gradient descent).
  std::shared_ptr<const FlowRestart> flow;
  /// Members whose status became final at this step (they get a last metrics row).
  std::vector<int64_t> finished_now;

  int64_t members() const { return static_cast<int64_t>(active.size()); }
  /// Marks member s finished with `why` at this step (no more updates).
  void finish(int64_t s, MemberStatus why);
  /// Whether any member ended with `status`.
  bool any(MemberStatus status) const;
};

}  // namespace ncflab
