// One member's net on the host in float64 (internal): the forward pass, N, ∇N with any
// backward slopes, and forward-mode rates of single preactivations, in plain loops over a
// flat parameter row. The NCF flow on the CPU evaluates its field here: a flow step is a few
// thousand small operations, which cost microseconds as loops and milliseconds as ATen calls.
// Samples are the contiguous (inner) dimension of every per-unit array, so the loops
// vectorise over samples.
#pragma once

#include <cstdint>
#include <vector>

#include "ncflab/ncf/ncf.h"

namespace ncflab::flow_detail {

/// Per hidden layer, one value per (unit, sample), unit-major: [k_l · n].
using UnitSamples = std::vector<std::vector<double>>;

/// Σ a_i·b_i over `size` entries.
double dot(const double* a, const double* b, int64_t size);

/// The part of `direction` [size] orthogonal to `row` [size].
std::vector<double> tangent_part(const double* direction, const double* row, int64_t size);

/// One member's forward pass: z_l and a_l per hidden layer ([k_l · n]) and H ([n]).
struct HostPass {
  UnitSamples preactivations;
  UnitSamples activations;
  std::vector<double> outputs;
};

class HostNet {
 public:
  /// Copies the NCF's inputs and ȳ to the host (float64).
  explicit HostNet(const Ncf& ncf);

  int64_t parameters() const { return parameters_; }
  int64_t samples() const { return samples_; }
  size_t hidden_layers() const { return widths_.size(); }
  int64_t width(size_t layer) const { return widths_[layer]; }
  /// Layer l's weights [k_l, k_{l−1}] (row-major) inside a flat row.
  const double* weights(const double* row, size_t layer) const { return row + offsets_[layer]; }
  int64_t fan_in(size_t layer) const { return fan_ins_[layer]; }
  /// ‖x_i‖ per sample.
  const std::vector<double>& input_norms() const { return input_norms_; }

  /// The forward pass of `row` [P]: a_l = σ(z_l), or a_l = side ⊙ z_l with `sides` (p = 1,
  /// a mode's slopes).
  void forward(const double* row, const UnitSamples* sides, HostPass& pass) const;
  /// N = Σ_i ȳ_i H(x_i).
  double value(const HostPass& pass) const;
  /// σ'(z_l) of a pass.
  UnitSamples derivatives(const HostPass& pass) const;
  /// ∇N [P] into `gradient`, with `slopes` in place of σ'(z_l) in the backward pass.
  void gradient(const double* row, const HostPass& pass, const UnitSamples& slopes,
                double* gradient) const;
  /// dz of hidden layer `layer`'s (unit, sample) when the row moves by `step` [P], with
  /// `slopes` passing dz_{l−1} on (forward mode; it runs on that sample's column alone).
  double rate(const double* row, const HostPass& pass, const double* step,
              const UnitSamples& slopes, size_t layer, int64_t unit, int64_t sample) const;

 private:
  bool learned_output_;
  int64_t p_;
  double alpha_;
  int64_t samples_ = 0;
  int64_t parameters_ = 0;
  std::vector<double> inputs_t_;  // [d, n]: the inputs transposed, samples contiguous
  std::vector<double> ybar_;
  std::vector<double> input_norms_;
  std::vector<int64_t> widths_;   // k_l of the hidden layers
  std::vector<int64_t> fan_ins_;  // k_{l−1} (d for l = 0) of every weight tensor
  std::vector<int64_t> offsets_;  // of every weight tensor in a row
};

}  // namespace ncflab::flow_detail
