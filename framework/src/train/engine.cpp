// The choice between training engines: names, what `auto` means on a device, and the
// factory. The engines themselves live in aten_engines.cpp and fused_engine.cpp.
#include "ncflab/train/engine.h"

#include <cmath>

#include "aten_engines.h"

namespace ncflab {

const char* engine_name(EngineKind kind) {
  switch (kind) {
    case EngineKind::automatic:
      return "auto";
    case EngineKind::fused:
      return "fused";
    case EngineKind::batched:
      return "batched";
    case EngineKind::autograd:
      return "autograd";
  }
  return "unknown";
}

DeviceStatistics TrainingEngine::evaluate_on_device() {
  TORCH_CHECK(false, "TrainingEngine – the ", engine_name(kind()),
              " engine has no device steps (use engine batched)");
  return {};
}

void TrainingEngine::update_on_device(const torch::Tensor& scale) {
  TORCH_CHECK(false, "TrainingEngine – the ", engine_name(kind()),
              " engine has no device steps (use engine batched)");
}

StepChunk TrainingEngine::run_steps(const StepRule& rule, int64_t k, int64_t until,
                                    const std::vector<uint8_t>& active,
                                    const std::vector<uint8_t>& escaped) {
  TORCH_CHECK(false, "TrainingEngine – the ", engine_name(kind()),
              " engine takes no chunks of steps (use sync_every 1)");
  return {};
}

MemberCheck check_member(const StepRule& rule, double loss, double norm, double gradient_norm,
                         bool escaped_before) {
  // ‖w_k‖ + η‖∇ℓ‖ bounds ‖w_{k+1}‖: stop before an update that could overflow, so the kept
  // weights w_k are the last good ones.
  const double bound = norm + rule.step_size * gradient_norm;
  const bool diverges = !std::isfinite(loss) || !std::isfinite(bound);
  const bool escapes = !diverges && !escaped_before && norm >= rule.escape_radius;
  return {diverges, escapes, diverges || (escapes && rule.stop_at_escape)};
}

EngineKind resolve_engine_kind(EngineKind kind, const torch::Device& device) {
  if (kind != EngineKind::automatic) return kind;
  // On CPU the fused loops win at every size measured (README's benchmark): for small nets
  // ATen's per-op dispatch dwarfs the arithmetic, and even at widths 100, 100 with
  // n = 1000 they beat Debian's BLAS-backed batched matmuls by ~2×.
  return device.is_cpu() ? EngineKind::fused : EngineKind::batched;
}

std::unique_ptr<TrainingEngine> make_training_engine(EngineKind kind, FeedForward model,
                                                     torch::Tensor inputs, torch::Tensor labels,
                                                     LossKind loss) {
  TORCH_CHECK(inputs.device() == model->weights().front().device(),
              "make_training_engine – data and model must share a device – got ", inputs.device(),
              " and ", model->weights().front().device());
  TORCH_CHECK(inputs.scalar_type() == model->weights().front().scalar_type(),
              "make_training_engine – data and model must share a dtype – got ",
              inputs.scalar_type(), " and ", model->weights().front().scalar_type());
  switch (resolve_engine_kind(kind, inputs.device())) {
    case EngineKind::fused:
      return make_fused_engine(std::move(model), std::move(inputs), std::move(labels), loss,
                               active_cpu_isa());
    case EngineKind::autograd:
      return make_autograd_engine(std::move(model), std::move(inputs), std::move(labels), loss);
    case EngineKind::batched:
    case EngineKind::automatic:
      break;
  }
  return make_batched_engine(std::move(model), std::move(inputs), std::move(labels), loss);
}

}  // namespace ncflab
