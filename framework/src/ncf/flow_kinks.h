// The NCF flow's field on nets with kinks (p = 1, α ≠ 1; README "The NCF flow"), internal. N is
// piecewise polynomial there, so every member carries a mode: the side of each hidden
// preactivation (its slope: α below the kink, 1 above) and the kinks it slides along. Within
// a mode the field is smooth and the integrator's error control holds; the integrator locates
// where a step leaves its mode (a negative margin) and settles the new mode there.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "ncflab/model/feedforward.h"
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
  std::vector<torch::Tensor> sides;  // per hidden layer [k_l, n] on the net's device
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
  KinkedField(const Ncf& ncf, double tolerance);

  /// N(v) and ∇N(v) for rows v [A, P] in the members' modes (the polynomial of each mode,
  /// sliding kinks at their Filippov slopes). The modes keep the solved slopes.
  NcfEvaluation evaluate(const torch::Tensor& v, const std::vector<KinkMode*>& modes) const;

  /// The mode of a starting point: the sides of its preactivations, settled where it sits at
  /// a kink.
  KinkMode initial_mode(const torch::Tensor& row) const;

  /// Per row of v [A, P]: the kinks where it has left its member's mode or is within the
  /// tolerance of leaving it (margin < tolerance). The integrator locates where a step
  /// left by more than the tolerance and settles the mode where it lands.
  std::vector<std::vector<Departure>> departures(const torch::Tensor& v,
                                                 const std::vector<KinkMode*>& modes) const;

  /// The margins of `kinks` at row [P] in `mode` (positive: inside the mode).
  std::vector<double> margins(const torch::Tensor& row, const KinkMode& mode,
                              const std::vector<Kink>& kinks) const;

  /// The mode at a point within the tolerance of leaving `mode` at `kinks` (a crossing the
  /// integrator landed on): each of them, sliding or not, takes the side the field on both
  /// sides of it points to, or slides along it when they point at each other (Filippov);
  /// other sliding kinks whose slope left [α, 1] stop sliding.
  Settling settle(const torch::Tensor& row, KinkMode& mode, const std::vector<Kink>& kinks) const;

  double tolerance() const { return tolerance_; }

 private:
  struct Forward {
    std::vector<torch::Tensor> weights;  // [A, k_l, k_{l−1}]
    FeedForwardCache cache;              // z_l, a_l = side ⊙ z_l, outputs
  };
  struct Sliding {
    std::vector<double> slopes;
    torch::Tensor gradient;  // [P]
  };

  // The polynomial of the mode: rows v [A, P], sides per hidden layer [A, k_l, n].
  Forward forward(const torch::Tensor& v, const std::vector<torch::Tensor>& sides) const;
  Forward member_forward(const Forward& all, int64_t a) const;
  // ∇N of one member for a batch of backward slope sets [B, k_l, n]: [B, P].
  torch::Tensor gradients(const Forward& member, const std::vector<torch::Tensor>& slopes) const;
  // dz/ds of `kinks` along the tangent part of each direction [B, P]: [B, F]; sliding
  // kinks pass nothing on (dz = 0 for them at the solution).
  torch::Tensor rates(const Forward& member, const torch::Tensor& row,
                      const torch::Tensor& directions, const std::vector<torch::Tensor>& sides,
                      const std::vector<Kink>& sliding, const std::vector<Kink>& kinks) const;
  // The slopes of `sliding` that keep those kinks at zero, with the other slopes `sides`.
  Sliding slide(const Forward& member, const torch::Tensor& row,
                const std::vector<torch::Tensor>& sides, const std::vector<Kink>& sliding,
                std::vector<double> start) const;
  // Per hidden layer [k_l, n]: what a preactivation's margin divides z by.
  std::vector<torch::Tensor> margin_scales(const Forward& member) const;
  // ‖v‖/√layers: a layer's norm if the layers were balanced.
  double layer_size(const Forward& member) const;
  // Whether kink's row of W_l is below kCollapsed of that (its unit dies away).
  bool row_collapsed(const Forward& member, const Kink& kink) const;
  // z/scale with the sign of each side, +inf where dead or sliding: [k_l, n] on CPU.
  std::vector<torch::Tensor> signed_margins(const Forward& member, const KinkMode& mode) const;
  double slope_margin(double slope) const;
  // The rate of `kink`'s margin (per unit angle) with its slope set to `slope`, the sliding
  // kinks re-solved.
  double side_rate(const Forward& member, const torch::Tensor& row, const KinkMode& mode,
                   const Kink& kink, double slope) const;

  const Ncf& ncf_;
  double tolerance_;
  double low_;   // α: the slope below a kink
  double high_;  // 1: above
};

}  // namespace ncflab::flow_detail
