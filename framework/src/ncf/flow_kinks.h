// The NCF flow's field on nets with kinks (p = 1, α ≠ 1; README "The NCF flow"), internal. N is
// piecewise polynomial there, so every member carries a mode: the side of each hidden
// preactivation (its slope: α below the kink, 1 above) and the kinks it slides along. Within
// a mode the field is smooth and the integrator's error control holds; the integrator locates
// where a step leaves its mode (a negative margin) and settles the new mode there.
//
// A mode's bookkeeping is per member and full of small decisions, so it runs on the host
// (HostNet), on float64 rows; only the batched field of a flow off the CPU runs on its device.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "flow_host_net.h"
#include "ncflab/ncf/ncf.h"

namespace ncflab::flow_detail {

/// A hidden preactivation z = W_l[unit,:]·a_{l−1}[:, sample] (layer: 0 for W1's output).
struct Kink {
  int64_t layer = 0;
  int64_t unit = 0;
  int64_t sample = 0;
  bool operator==(const Kink& other) const {
    return layer == other.layer && unit == other.unit && sample == other.sample;
  }
};

/// A member's mode: each hidden preactivation's side as its slope (α below its kink, 1 above)
/// and the kinks the flow slides along (Filippov): their slopes are chosen in [α, 1] so that
/// they stay at zero.
struct KinkMode {
  UnitSamples sides;  // per hidden layer [k_l · n]
  std::vector<Kink> sliding;
  std::vector<double> slopes;  // the sliding kinks' slopes at the last solve
};

/// A kink where a point has left its mode, and by how much (negative): −z/scale for a
/// preactivation on the wrong side of its side, the distance of a sliding slope outside [α, 1]
/// in units of 1 − α.
struct Departure {
  Kink kink;
  double margin = 0;
};

/// What settling a mode at a point did: whether the mode changed, and how.
struct Settling {
  bool changed = false;
  int64_t crossings = 0;  // preactivations that changed side
  int64_t entries = 0;    // kinks that began sliding
  int64_t exits = 0;      // kinks that stopped sliding
};

class KinkedField {
 public:
  /// `tolerance`: the relative margin within which a point counts as at a kink (and beyond
  /// which the integrator locates the crossing).
  KinkedField(const Ncf& ncf, const HostNet& net, double tolerance);

  /// N(v), and ∇N(v) into `gradient` [P], for one member's row v [P] in its mode (the
  /// polynomial of the mode, sliding kinks at their Filippov slopes, which the mode keeps).
  double evaluate(const double* row, KinkMode& mode, double* gradient) const;

  /// The same for rows v [A, P] on any device: the field of a flow that runs off the CPU.
  NcfEvaluation evaluate(const torch::Tensor& v, const std::vector<KinkMode*>& modes) const;

  /// The mode of a starting point: the sides of its preactivations, settled where it sits at
  /// a kink.
  KinkMode initial_mode(const double* row) const;

  /// The kinks where a row has left its member's mode or is within the tolerance of leaving
  /// it (margin < tolerance). The integrator locates where a step left by more than the
  /// tolerance and settles the mode where it lands.
  std::vector<Departure> departures(const double* row, const KinkMode& mode) const;

  /// The margins of `kinks` at a row in `mode` (positive: inside the mode).
  std::vector<double> margins(const double* row, const KinkMode& mode,
                              const std::vector<Kink>& kinks) const;

  /// The mode at a point within the tolerance of leaving `mode` at `kinks` (a crossing the
  /// integrator landed on): each of them, sliding or not, takes the side the field on both
  /// sides of it points to, or slides along it when they point at each other (Filippov);
  /// other sliding kinks whose slope left [α, 1] stop sliding.
  Settling settle(const double* row, KinkMode& mode, const std::vector<Kink>& kinks) const;

  double tolerance() const { return tolerance_; }

 private:
  // A member's row and its forward pass in a mode.
  struct Forward {
    const double* row = nullptr;
    HostPass pass;
  };
  struct Sliding {
    std::vector<double> slopes;
    std::vector<double> gradient;  // [P]
  };

  Forward forward(const double* row, const UnitSamples& sides) const;
  std::vector<double> gradient(const Forward& member, const UnitSamples& slopes) const;
  // dz/ds of `kinks` along the tangent part of `direction` [P]; sliding kinks pass nothing
  // on (dz = 0 for them at the solution).
  std::vector<double> rates(const Forward& member, const std::vector<double>& direction,
                            const UnitSamples& sides, const std::vector<Kink>& sliding,
                            const std::vector<Kink>& kinks) const;
  // The slopes of `sliding` that keep those kinks at zero, with the other slopes `sides`.
  Sliding slide(const Forward& member, const UnitSamples& sides, const std::vector<Kink>& sliding,
                std::vector<double> start) const;
  // ‖v‖/√layers: a layer's norm if the layers were balanced.
  double layer_size(const Forward& member) const;
  // ‖W_l[unit, :]‖.
  double row_norm(const Forward& member, const Kink& kink) const;
  // ‖a_{l−1}[:, sample]‖ (‖x_sample‖ for l = 0).
  double column_norm(const Forward& member, const Kink& kink) const;
  // What a preactivation's margin divides z by, from its row's and column's norms (.cpp).
  double margin_scale(double size, const Kink& kink, double row, double column) const;
  // Whether kink's row of W_l is below kCollapsed of that (its unit dies away).
  bool row_collapsed(const Forward& member, const Kink& kink) const;
  // Per hidden layer [k_l · n]: the preactivations with no side to leave (see .cpp).
  std::vector<std::vector<bool>> held(const KinkMode& mode) const;
  // z/scale with the sign of its side, +inf where dead or held; `row` and `column` are
  // row_norm and column_norm of the kink.
  double signed_margin(const Forward& member, const KinkMode& mode,
                       const std::vector<std::vector<bool>>& held, double size, const Kink& kink,
                       double row, double column) const;
  double slope_margin(double slope) const;
  // The rate of `kink`'s margin (per unit angle) with its slope set to `slope`, the sliding
  // kinks re-solved.
  double side_rate(const Forward& member, const KinkMode& mode, const Kink& kink,
                   double slope) const;
  size_t entry(const Kink& kink) const {
    return static_cast<size_t>(kink.unit * net_.samples() + kink.sample);
  }

  const Ncf& ncf_;
  const HostNet& net_;
  double tolerance_;
  double low_;   // α: the slope below a kink
  double high_;  // 1: above
};

}  // namespace ncflab::flow_detail
