// What the gradient-descent loop knows at step k: per-member statistics, statuses and
// escape records. Hooks read it; checkpoints save it; summaries report it.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace ncflab {

/// How a member's training ended ("running" while it goes on).
enum class MemberStatus { running, escaped, max_steps, diverged, interrupted };

/// "running", "escaped", "max_steps", "diverged", "interrupted".
const char* member_status_name(MemberStatus status);

/// When a member escaped: the first k with ‖w_k‖ ≥ r_esc.
struct EscapeRecord {
  int64_t step = -1;         ///< k (−1: not escaped)
  double time = 0;           ///< t = k·η
  double rescaled_time = 0;  ///< δ^(L−2)·t (L = 2: t itself)
  double norm = 0;           ///< ‖w_k‖
};

/// What the trainer knows at step k, before the update that makes w_{k+1}.
struct TrainState {
  int64_t step = 0;                                       ///< k
  double step_size = 0;                                   ///< η
  double time = 0;                                        ///< t = k·η
  std::vector<double> deltas;                             ///< δ per member
  const std::vector<torch::Tensor>* weights = nullptr;    ///< W_l at w_k, [S, k_l, k_{l−1}]
  const std::vector<torch::Tensor>* gradients = nullptr;  ///< ∇ℓ(w_k), same shapes
  std::vector<double> loss;                               ///< ℓ(w_k) per member
  std::vector<double> norm;                               ///< ‖w_k‖ per member
  std::vector<double> gradient_norm;                      ///< ‖∇ℓ(w_k)‖ per member
  std::vector<uint8_t> active;                            ///< members still being updated
  std::vector<MemberStatus> status;                       ///< per member
  std::vector<EscapeRecord> escape;                       ///< per member
  std::vector<int64_t> steps_done;                        ///< updates applied to each member so far
  /// Members whose status became final at this step (they get a last metrics row).
  std::vector<int64_t> finished_now;

  int64_t members() const { return static_cast<int64_t>(active.size()); }
  /// Marks member s finished with `why` at this step (no more updates).
  void finish(int64_t s, MemberStatus why);
  /// Whether any member ended with `status`.
  bool any(MemberStatus status) const;
};

}  // namespace ncflab
