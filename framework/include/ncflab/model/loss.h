// Square and logistic losses over an ensemble's outputs, their gradient in the
// outputs, and the NCF label vector ȳ = −∂ℓ/∂H at H = 0 (SPEC §1).
#pragma once

#include <torch/torch.h>

#include <string>

namespace ncflab {

enum class LossKind { square, logistic };

/// "square" or "logistic".
std::string loss_name(LossKind kind);

/// ℓ per member: square ½Σ(H−y)², logistic Σ log(1 + exp(−yH)).
/// `outputs` [S, n], `labels` [n] → [S].
torch::Tensor loss_value(LossKind kind, const torch::Tensor& outputs, const torch::Tensor& labels);

/// ∂ℓ/∂H: square H − y, logistic −y·sigmoid(−yH). [S, n].
torch::Tensor loss_output_gradient(LossKind kind, const torch::Tensor& outputs,
                                   const torch::Tensor& labels);

/// ȳ = −∂ℓ/∂H at H = 0: y for square, y/2 for logistic. [n].
torch::Tensor ncf_labels(LossKind kind, const torch::Tensor& labels);

/// Throws InputError (naming `origin` and `label_name`) unless the labels suit the
/// loss: the logistic loss needs every label in {−1, +1}.
void check_labels(LossKind kind, const torch::Tensor& labels, const std::string& origin,
                  const std::string& label_name);

}  // namespace ncflab
