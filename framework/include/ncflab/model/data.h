// Training data: synthetic teacher problems, deterministic per seed, and CSV
// files (header row, numeric columns, one label column).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ncflab/model/activation.h"

namespace ncflab {

/// Inputs X and labels y, float64 on CPU (moved to the run's device and dtype later).
struct Dataset {
  torch::Tensor inputs;                    ///< [n, d]
  torch::Tensor labels;                    ///< [n]
  std::vector<std::string> feature_names;  ///< d names (CSV header, or x1 … xd)
  std::string label_name;                  ///< CSV label column, or "y"
  std::string origin;                      ///< one line saying where the data came from

  int64_t size() const { return inputs.size(0); }
  int64_t dim() const { return inputs.size(1); }
};

enum class InputDistribution { gaussian, sphere };
enum class TeacherKind { neuron, two_layer, random_signs };
enum class InputNormalization { none, standardize, sphere };

struct SyntheticDataOptions {
  /// Number of samples n.
  TORCH_ARG(int64_t, n) = 100;
  /// Input dimension d.
  TORCH_ARG(int64_t, d) = 10;
  /// gaussian: x ~ N(0, I_d); sphere: x uniform on the unit sphere.
  TORCH_ARG(InputDistribution, inputs) = InputDistribution::gaussian;
  /// neuron: y = σ(bᵀx), ‖b‖ = 1; two_layer: y = Σ_j a_j σ(w_jᵀx), ‖w_j‖ = 1, a_j = ±1
  /// at random; random_signs: y = ±1 independent of x.
  TORCH_ARG(TeacherKind, teacher) = TeacherKind::neuron;
  /// Hidden units of the two_layer teacher.
  TORCH_ARG(int64_t, teacher_width) = 2;
  /// σ used by the teacher.
  TORCH_ARG(PolyLeakyReLUOptions, teacher_activation) = {};
  /// Standard deviation of Gaussian noise added to the teacher's outputs.
  TORCH_ARG(double, label_noise) = 0.0;
  /// Replace each label by its sign (±1, sign(0) = +1), e.g. for the logistic loss.
  TORCH_ARG(bool, sign_labels) = false;
  /// Seed of the data's random stream.
  TORCH_ARG(uint64_t, seed) = 0;
};

/// Draws a synthetic data set; the same options give the same tensors bit for bit.
Dataset make_synthetic_data(const SyntheticDataOptions& options);

/// Reads a CSV file with a header row and numeric cells. `label_column` names the
/// label column (empty: the last column); every other column is a feature.
/// Throws InputError (file, line, column) for a missing or empty file, ragged rows,
/// non-numeric or non-finite cells and a missing label column.
Dataset load_csv_data(const std::string& path, const std::string& label_column);

/// Rescales the inputs in place: standardize (zero mean, unit variance per feature;
/// constant features are only centred) or sphere (each row to unit norm).
void normalize_inputs(Dataset& data, InputNormalization normalization);

}  // namespace ncflab
