// The hooks ncflab ships: unit-sphere projection per layer, comparison with the NCF's
// KKT conditions and flow, a progress line, and periodic checkpoints.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "ncflab/hooks.h"
#include "ncflab/ncf.h"

namespace ncflab {

/// Unit-sphere projection, per layer: ‖W_l‖, the share ‖W_l‖²/‖w‖² (q_l/L at a KKT point,
/// SPEC §1) and σ₂/σ₁ of W_l/‖W_l‖ (0 when rank one). Columns layer{l}_norm,
/// layer{l}_share for each of the `depth` weight tensors and layer{l}_sv_ratio for the
/// first `hidden_layers` (a feed-forward net's output row W_K has none; a single-layer
/// model's W1, share 1, has one).
class LayerProjectionHook final : public TrainHook {
 public:
  LayerProjectionHook(int64_t depth, int64_t hidden_layers)
      : depth_(depth), hidden_layers_(hidden_layers) {}
  std::vector<std::string> metric_names() const override;
  void metrics(const TrainState& state, const std::vector<int64_t>& rows,
               MetricColumns& columns) override;

 private:
  int64_t depth_;
  int64_t hidden_layers_;
};

/// Compares û = w/‖w‖ with the constrained NCF: N(û), the smooth KKT residual, the
/// kink-aware one (p = 1 nets), cos(û, u(T*)/‖u(T*)‖) to the flow's blow-up direction,
/// cos(û, u(τ)/‖u(τ)‖) to the flow at the matching time τ = δ^(L−2)·t, and the largest
/// cosine to the points of a KKT search (hidden units aligned first).
class KktComparisonHook final : public TrainHook {
 public:
  struct Reference {
    /// Flow direction at blow-up (or wherever the flow ended), [S, P]; undefined: none.
    torch::Tensor flow_direction;
    /// Per member, u at τ = δ^(L−2)·k·η for logged k = 0, log_every, 2·log_every, …
    /// ([T, P], NaN past the flow's end); empty: none.
    std::vector<torch::Tensor> flow_samples;
    int64_t log_every = 1;
    /// Unit KKT points [P] (float64 CPU) of a search; empty: no cos_to_kkt column.
    std::vector<torch::Tensor> kkt_points;
  };

  /// `kink_tolerance` > 0 adds the kink-aware residual column (meaningful for p = 1).
  KktComparisonHook(std::shared_ptr<const Ncf> ncf, Reference reference, double kink_tolerance);
  std::vector<std::string> metric_names() const override;
  void metrics(const TrainState& state, const std::vector<int64_t>& rows,
               MetricColumns& columns) override;

 private:
  std::shared_ptr<const Ncf> ncf_;
  Reference reference_;
  double kink_tolerance_;
};

/// A progress line: step, steps/s, ETA, loss, ‖w‖/δ and members still running. On a
/// terminal it is redrawn in place every `interval`; otherwise a plain line each time.
class ProgressHook final : public TrainHook {
 public:
  /// `expected_escape_step` (≤ 0: unknown) lets the ETA aim at the predicted escape.
  ProgressHook(std::ostream& out, bool terminal, std::chrono::duration<double> interval,
               int64_t max_steps, int64_t expected_escape_step);
  void on_start(TrainState& state) override;
  void on_step(TrainState& state) override;
  void on_end(TrainState& state) override;

 private:
  void draw(const TrainState& state, bool final_line);

  std::ostream& out_;
  bool terminal_;
  std::chrono::duration<double> interval_;
  int64_t max_steps_;
  int64_t expected_escape_step_;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point last_draw_;
  int64_t start_step_ = 0;
  int64_t counter_ = 0;
};

/// Keeps a copy of the weights every `every` steps and at the last step, for
/// weights_trajectory.pt: how each unit's weights move (e.g. the angles of a 2-D
/// single-layer net's neurons) is what the paper's figures draw.
class WeightSnapshotHook final : public TrainHook {
 public:
  explicit WeightSnapshotHook(int64_t every) : every_(every) {}
  void on_step(TrainState& state) override;
  void on_end(TrainState& state) override;
  /// {"step": [T] int64, "W1": [T, count, k_1, d], …} for members [first, first + count).
  std::vector<std::pair<std::string, torch::Tensor>> trajectory(int64_t first, int64_t count) const;

 private:
  void take(const TrainState& state);

  int64_t every_;
  std::vector<int64_t> steps_;
  std::vector<std::vector<torch::Tensor>> snapshots_;  // per snapshot, per layer, float64 CPU
};

/// Writes a checkpoint every `every` steps (0: never) and when the run is interrupted,
/// through `save` (which must write atomically).
class CheckpointHook final : public TrainHook {
 public:
  CheckpointHook(int64_t every, std::function<void(const TrainState&)> save)
      : every_(every), save_(std::move(save)) {}
  void on_step(TrainState& state) override;
  void on_end(TrainState& state) override;

 private:
  int64_t every_;
  int64_t start_step_ = -1;
  std::function<void(const TrainState&)> save_;
};

}  // namespace ncflab
