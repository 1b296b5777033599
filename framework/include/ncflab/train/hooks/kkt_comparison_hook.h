// Where the direction of training stands against the theory: the constrained NCF's KKT
// conditions at û = w/‖w‖ and the NCF flow started from the same w0 (SPEC §1).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "ncflab/ncf/ncf.h"
#include "ncflab/train/hook.h"

namespace ncflab {

/// The comparison of one member at a logged step; NaN where a value was not asked for.
struct KktComparison {
  double ncf = std::numeric_limits<double>::quiet_NaN();              ///< N(û)
  double kkt_residual = std::numeric_limits<double>::quiet_NaN();     ///< smooth residual
  double kink_residual = std::numeric_limits<double>::quiet_NaN();    ///< kink-aware residual
  double cos_to_flow = std::numeric_limits<double>::quiet_NaN();      ///< to u(T*)/‖u(T*)‖
  double cos_to_flow_now = std::numeric_limits<double>::quiet_NaN();  ///< to u(δ^(L−2)t)
  double cos_to_kkt = std::numeric_limits<double>::quiet_NaN();       ///< best over KKT points
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
    /// Per member, u at τ = δ^(L−2)·t_j for the scheduled rows j = 0, 1, … ([T, P], NaN
    /// past the flow's end); empty: none.
    std::vector<torch::Tensor> flow_samples;
    /// Per member, the training times t_j of those rows: a row compares with sample j
    /// when its iteration is j·log_every and the member's time is exactly t_j (not a
    /// member's off-schedule last row).
    std::vector<std::vector<double>> sample_times;
    int64_t log_every = 1;
    /// Unit KKT points [P] (float64 CPU) of a search; empty: no cos_to_kkt column.
    std::vector<torch::Tensor> kkt_points;
  };

  /// `kink_tol` > 0 adds the kink-aware residual column (meaningful for p = 1).
  KktComparisonHook(std::shared_ptr<const Ncf> ncf, Reference reference, double kink_tol);
  std::vector<std::string> metric_names() const override;
  int64_t next_step(int64_t step) const override { return never_again; }
  void metrics(const TrainState& state, const std::vector<int64_t>& rows,
               MetricColumns& columns) override;

  /// Member s's comparison at its last logged row (all NaN before any).
  const KktComparison& last(int64_t s) const;

 private:
  /// A metrics column and the field of KktComparison it shows.
  struct Column {
    const char* name;
    double KktComparison::*field;
  };
  /// The columns this hook writes, in order (those whose reference exists).
  std::vector<Column> columns() const;
  /// The comparison of members `rows` at the state's step.
  std::vector<KktComparison> compare(const TrainState& state,
                                     const std::vector<int64_t>& rows) const;

  std::shared_ptr<const Ncf> ncf_;
  Reference reference_;
  double kink_tol_;
  std::vector<KktComparison> last_;  // per member
};

}  // namespace ncflab
