// Per-layer statistics of the weights along training: ‖W_l‖, the share of ‖w‖² each
// layer holds and how far each hidden layer is from rank one (SPEC §1 KKT structure).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ncflab/train/hook.h"

namespace ncflab {

/// One layer's statistics at a logged step.
struct LayerStatistics {
  double norm = 0;      ///< ‖W_l‖_F
  double share = 0;     ///< ‖W_l‖²/‖w‖² (q_l/L at a KKT point)
  double sv_ratio = 0;  ///< σ₂/σ₁ of W_l (0 when rank one); NaN for the output row
};

/// Columns layer{l}_norm, layer{l}_share for each of the `depth` weight tensors and
/// layer{l}_sv_ratio for the first `hidden_layers` (a feed-forward net's output row W_K
/// has none; a single-layer model's W1, share 1, has one).
class LayerStatisticsHook final : public TrainHook {
 public:
  LayerStatisticsHook(int64_t depth, int64_t hidden_layers);
  std::vector<std::string> metric_names() const override;
  int64_t next_step(int64_t step) const override { return never_again; }
  void metrics(const TrainState& state, const std::vector<int64_t>& rows,
               MetricColumns& columns) override;

  /// Member s's statistics per layer at its last logged row (empty before any).
  const std::vector<LayerStatistics>& last(int64_t s) const;

 private:
  int64_t depth_;
  int64_t hidden_layers_;
  std::vector<std::vector<LayerStatistics>> last_;  // per member, per layer
};

}  // namespace ncflab
