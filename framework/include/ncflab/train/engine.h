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

/// Whether the fused engine computes a member of `parameters` weights on `samples` samples
/// with BLAS matrix products (wide nets: n·P ≥ 2^20 multiply-adds a pass, where a tuned GEMM
/// on every core wins) rather than its SIMD kernels. The BLAS path sums in the BLAS's order,
/// so it agrees with the kernels to rounding, not bit for bit.
bool fused_engine_uses_blas(int64_t samples, int64_t parameters);

/// The kind `automatic` resolves to on `device` (other kinds are returned as they are).
EngineKind resolve_engine_kind(EngineKind kind, const torch::Device& device);

}  // namespace ncflab
