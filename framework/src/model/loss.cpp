// Loss values and gradients in the network outputs. softplus keeps the logistic
// loss exact for large margins, where log(1 + exp(−m)) would round to 0 or overflow.
#include "ncflab/model/loss.h"

#include <fmt/format.h>

#include "ncflab/core/errors.h"

namespace ncflab {

std::string loss_name(LossKind kind) { return kind == LossKind::square ? "square" : "logistic"; }

torch::Tensor loss_value(LossKind kind, const torch::Tensor& outputs, const torch::Tensor& labels) {
  if (kind == LossKind::square) return 0.5 * (outputs - labels).square().sum(-1);
  return torch::softplus(-labels * outputs).sum(-1);
}

torch::Tensor loss_output_gradient(LossKind kind, const torch::Tensor& outputs,
                                   const torch::Tensor& labels) {
  if (kind == LossKind::square) return outputs - labels;
  return -labels * torch::sigmoid(-labels * outputs);
}

torch::Tensor ncf_labels(LossKind kind, const torch::Tensor& labels) {
  return kind == LossKind::square ? labels.clone() : 0.5 * labels;
}

void check_labels(LossKind kind, const torch::Tensor& labels, const std::string& origin,
                  const std::string& label_name) {
  if (kind != LossKind::logistic) return;
  const auto bad = ((labels != 1) & (labels != -1)).nonzero();
  if (bad.numel() == 0) return;
  const int64_t row = bad[0].item<int64_t>();
  throw InputError(
      {origin, 0}, fmt::format("label '{}'", label_name),
      "labels in {-1, +1} for loss: logistic (synthetic data: set data.sign_labels: true)",
      fmt::format("{:g} in row {}", labels[row].item<double>(), row + 1));
}

}  // namespace ncflab
