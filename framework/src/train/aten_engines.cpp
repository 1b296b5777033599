// The ATen engines: the batched analytic forward/backward (CPU or CUDA) and the
// autograd reference. Both update through the same masked ATen step.
#include "aten_engines.h"

#include <algorithm>

namespace ncflab {
namespace {

// Host copies of the [S] statistics: one transfer per evaluation.
void copy_statistics(const DeviceStatistics& on_device, const std::vector<uint8_t>& active,
                     StepStatistics& statistics) {
  const auto host = torch::stack({on_device.loss, on_device.norm, on_device.gradient_norm})
                        .to(torch::kCPU, torch::kFloat64);
  const auto at = host.accessor<double, 2>();
  const size_t members = active.size();
  statistics.loss.resize(members);
  statistics.norm.resize(members);
  statistics.gradient_norm.resize(members);
  for (size_t s = 0; s < members; ++s) {
    if (!active[s]) continue;
    const auto i = static_cast<int64_t>(s);
    statistics.loss[s] = at[0][i];
    statistics.norm[s] = at[1][i];
    statistics.gradient_norm[s] = at[2][i];
  }
}

torch::Tensor squared_norm(const std::vector<torch::Tensor>& layers) {
  torch::Tensor total;
  for (const auto& w : layers) {
    const auto part = w.square().sum({1, 2});
    total = total.defined() ? total + part : part;
  }
  return total;
}

bool all_active(const std::vector<uint8_t>& active) {
  return std::all_of(active.begin(), active.end(), [](uint8_t a) { return a != 0; });
}

/// What the ATen engines share: the problem, gradient buffers and the masked update.
class AtenEngine : public TrainingEngine {
 public:
  AtenEngine(FeedForward model, torch::Tensor inputs, torch::Tensor labels, LossKind loss)
      : model_(std::move(model)),
        inputs_(std::move(inputs)),
        labels_(std::move(labels)),
        loss_(loss) {
    for (const auto& w : model_->weights()) gradients_.push_back(torch::zeros_like(w));
  }

  void evaluate(const std::vector<uint8_t>& active, StepStatistics& statistics) override {
    copy_statistics(evaluate_on_device(), active, statistics);
  }

  bool runs_on_device() const override { return true; }

  void update(double step_size, const std::vector<uint8_t>& active) override {
    torch::NoGradGuard no_grad;
    const auto& weights = model_->weights();
    if (all_active(active)) {
      for (size_t l = 0; l < weights.size(); ++l) weights[l].sub_(gradients_[l] * step_size);
      return;
    }
    std::vector<double> factors(active.size());
    for (size_t s = 0; s < active.size(); ++s) factors[s] = active[s] ? step_size : 0.0;
    update_on_device(torch::tensor(factors, torch::kFloat64).to(weights.front().options()));
  }

  // The scale multiplies each member's gradient (×η is the same rounding as the scalar
  // step above, so a member's arithmetic does not depend on others being frozen); frozen
  // members' steps are zeroed rather than multiplied by 0, which would turn the infinite
  // gradient of a diverged member into NaN weights.
  void update_on_device(const torch::Tensor& scale) override {
    torch::NoGradGuard no_grad;
    const auto& weights = model_->weights();
    const auto per_member = scale.view({-1, 1, 1});
    const auto frozen = per_member == 0;
    for (size_t l = 0; l < weights.size(); ++l) {
      auto step = gradients_[l] * per_member;
      step.masked_fill_(frozen, 0);
      weights[l].sub_(step);
    }
  }

 protected:
  // Stores ∇ℓ per layer; returns the per-member statistics of this evaluation.
  DeviceStatistics finish_evaluation(const std::vector<torch::Tensor>& grads,
                                     const torch::Tensor& loss) {
    torch::NoGradGuard no_grad;
    for (size_t l = 0; l < grads.size(); ++l) gradients_[l].copy_(grads[l]);
    return {loss.detach(), squared_norm(model_->weights()).sqrt(), squared_norm(gradients_).sqrt()};
  }

  FeedForward model_;
  torch::Tensor inputs_;
  torch::Tensor labels_;
  LossKind loss_;
};

/// Analytic forward/backward as batched ATen ops over all members.
class BatchedEngine final : public AtenEngine {
 public:
  using AtenEngine::AtenEngine;

  DeviceStatistics evaluate_on_device() override {
    torch::NoGradGuard no_grad;
    const auto& weights = model_->weights();
    const auto& options = model_->options;
    const auto cache = feedforward_forward(weights, inputs_, options);
    const auto residual = loss_output_gradient(loss_, cache.outputs, labels_);
    return finish_evaluation(feedforward_vjp(weights, inputs_, options, cache, residual),
                             loss_value(loss_, cache.outputs, labels_));
  }

  EngineKind kind() const override { return EngineKind::batched; }
};

/// Autograd through feedforward_outputs and the custom activation: slow, obviously right.
class AutogradEngine final : public AtenEngine {
 public:
  using AtenEngine::AtenEngine;

  DeviceStatistics evaluate_on_device() override {
    std::vector<torch::Tensor> leaves;
    for (const auto& w : model_->weights())
      leaves.push_back(w.detach().clone().requires_grad_(true));
    const auto outputs = feedforward_outputs(leaves, inputs_, model_->options);
    const auto loss = loss_value(loss_, outputs, labels_);
    // Members are independent, so the gradient of the sum is each member's gradient.
    return finish_evaluation(torch::autograd::grad({loss.sum()}, leaves), loss);
  }

  EngineKind kind() const override { return EngineKind::autograd; }
};

}  // namespace

std::unique_ptr<TrainingEngine> make_batched_engine(FeedForward model, torch::Tensor inputs,
                                                    torch::Tensor labels, LossKind loss) {
  return std::make_unique<BatchedEngine>(std::move(model), std::move(inputs), std::move(labels),
                                         loss);
}

std::unique_ptr<TrainingEngine> make_autograd_engine(FeedForward model, torch::Tensor inputs,
                                                     torch::Tensor labels, LossKind loss) {
  return std::make_unique<AutogradEngine>(std::move(model), std::move(inputs), std::move(labels),
                                          loss);
}

}  // namespace ncflab
