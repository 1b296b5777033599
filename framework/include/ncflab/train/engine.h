// Training engines: one gradient-descent step's arithmetic (loss, ∇ℓ, update) for an
// ensemble of feed-forward nets. Three interchangeable implementations, so the fast
// ones can always be checked against the plain autograd reference.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ncflab/core/cpu_isa.h"
#include "ncflab/model/feedforward.h"
#include "ncflab/model/loss.h"

namespace ncflab {

enum class EngineKind {
  automatic,  ///< fused on CPU, batched on CUDA
  fused,      ///< hand-written CPU loops per member (no per-op dispatch); CPU only
  batched,    ///< analytic forward/backward as batched ATen ops (CPU or CUDA)
  autograd,   ///< LibTorch autograd through the custom activation: the reference
};

/// "auto", "fused", "batched", "autograd".
const char* engine_name(EngineKind kind);

/// Per-member numbers of one evaluation, on the host.
struct StepStatistics {
  std::vector<double> loss;           ///< ℓ(w_k) per member
  std::vector<double> norm;           ///< ‖w_k‖ per member
  std::vector<double> gradient_norm;  ///< ‖∇ℓ(w_k)‖ per member
};

/// The same numbers as [S] tensors on the weights' device, for every member.
struct DeviceStatistics {
  torch::Tensor loss;
  torch::Tensor norm;
  torch::Tensor gradient_norm;
};

/// The trainer's rule for gradient-descent steps taken between two host looks.
struct StepRule {
  double step_size = 0;      ///< η
  double escape_radius = 0;  ///< r_esc: a member escapes at its first k with ‖w_k‖ ≥ r_esc
  bool stop_at_escape = true;
};

/// What each member did in the steps between two host looks (StepRule's checks after every
/// evaluation), indexed by member.
struct StepChunk {
  std::vector<int64_t> finish_step;  ///< the step a member finished at (−1: still running)
  std::vector<uint8_t> diverged;     ///< finished by divergence (otherwise by its escape)
  std::vector<int64_t> escape_step;  ///< its first k with ‖w_k‖ ≥ r_esc in the chunk (−1: none)
  std::vector<double> escape_norm;  ///< ‖w_k‖ there
  /// ℓ, ‖w‖, ‖∇ℓ‖ at finish_step (members that finished; others: undefined).
  std::vector<double> loss, norm, gradient_norm;
};

/// The trainer's checks of a running member after evaluating w_k (Trainer::check_divergence,
/// then check_escape), for the host loop and for chunks of steps alike.
struct MemberCheck {
  bool diverges;  ///< ℓ or the bound ‖w_k‖ + η‖∇ℓ‖ on ‖w_{k+1}‖ is not finite
  bool escapes;   ///< not diverged, not escaped before, and ‖w_k‖ ≥ r_esc
  bool finishes;  ///< diverges, or escapes with stop_at_escape
};
MemberCheck check_member(const StepRule& rule, double loss, double norm, double gradient_norm,
                         bool escaped_before);

/// Owns nothing but scratch: weights and gradients are the model's and the engine's
/// tensors, updated in place. Members with active[s] == 0 are skipped (frozen): their
/// weights do not change and their statistics keep the last values computed.
class TrainingEngine {
 public:
  virtual ~TrainingEngine() = default;

  /// Computes ℓ, ∇ℓ and ‖w‖ at the current weights for the active members.
  virtual void evaluate(const std::vector<uint8_t>& active, StepStatistics& statistics) = 0;
  /// w ← w − η·∇ℓ (the gradients of the last evaluate) for the active members.
  virtual void update(double step_size, const std::vector<uint8_t>& active) = 0;

  /// Whether evaluate_on_device and update_on_device work: the ATen engines, whose
  /// steps can run many times between two host synchronisations (the CUDA path).
  virtual bool runs_on_device() const { return false; }
  /// evaluate() for every member, its statistics left on the device: no host copy, so
  /// nothing waits for the device (and a CUDA graph may capture it).
  virtual DeviceStatistics evaluate_on_device();
  /// w ← w − scale_s·∇ℓ with scale [S] on the device (η for active members, 0 for frozen
  /// ones, whose weights stay exactly as they are).
  virtual void update_on_device(const torch::Tensor& scale);

  /// Whether run_steps works: engines that take many steps between two host looks
  /// themselves (the fused CPU engine, whose threads then meet once per chunk, not per step).
  virtual bool runs_step_chunks() const { return false; }
  /// From step k, evaluated on the host with these `active` members (`escaped`: those with
  /// an escape record): the update to w_{k+1}, then for k' = k+1 … until−1 the evaluation,
  /// check_member and the update of the members still running. Leaves the weights at
  /// w_until (finished members at the step they finished) and the same numbers bit for bit
  /// as evaluate/update step by step.
  virtual StepChunk run_steps(const StepRule& rule, int64_t k, int64_t until,
                              const std::vector<uint8_t>& active,
                              const std::vector<uint8_t>& escaped);

  /// ∇ℓ of the last evaluate, one tensor per layer [S, k_l, k_{l−1}].
  const std::vector<torch::Tensor>& gradients() const { return gradients_; }
  /// The resolved kind (never automatic).
  virtual EngineKind kind() const = 0;

 protected:
  std::vector<torch::Tensor> gradients_;
};

/// The engine for `kind` training `model`'s weights in place on `inputs` [n, d] and
/// `labels` [n] (same device and dtype as the model). automatic picks fused on CPU and
/// batched elsewhere.
/// Throws c10::Error for fused on a non-CPU device.
std::unique_ptr<TrainingEngine> make_training_engine(EngineKind kind, FeedForward model,
                                                     torch::Tensor inputs, torch::Tensor labels,
                                                     LossKind loss);

/// The fused engine with its kernels compiled for `isa` instead of the widest this CPU runs
/// (active_cpu_isa()): to compare instruction sets. Throws c10::Error when this CPU or build
/// lacks `isa`, or for a non-CPU device.
std::unique_ptr<TrainingEngine> make_fused_engine(FeedForward model, torch::Tensor inputs,
                                                  torch::Tensor labels, LossKind loss, CpuIsa isa);

/// Whether a member of `parameters` weights on `samples` samples is a wide net for the fused
/// engine (n·P ≥ 2^20 multiply-adds a pass): its layer products then run as register-tiled
/// matrix products — a member per thread when there is one for every thread, else each
/// member spread over all threads — rather than the interleaved SIMD lanes. These sum in
/// other orders, so they agree with the small-net kernels to rounding, not bit for bit.
bool fused_engine_is_wide(int64_t samples, int64_t parameters);

/// The kind `automatic` resolves to on `device` (other kinds are returned as they are).
EngineKind resolve_engine_kind(EngineKind kind, const torch::Device& device);

}  // namespace ncflab
