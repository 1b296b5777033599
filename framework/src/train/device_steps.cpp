// Gradient-descent steps between host synchronisations, with the trainer's checks as
// tensor ops. The checks reproduce Trainer::check_divergence and check_escape exactly:
// the same comparisons in float64 on the same values, in the same order, so a chunk ends
// where the host loop would have, bit for bit (tests/train/test_device_steps.cpp).
#include "device_steps.h"

#ifdef NCFLAB_WITH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace ncflab {

#ifdef NCFLAB_WITH_CUDA
// The first steps run eagerly (they initialise cuBLAS' workspace and the caching
// allocator's blocks, which a capture must not do), then one step is captured on a side
// stream and replayed from then on.
struct DeviceSteps::Graph {
  static constexpr int kWarmupSteps = 3;
  at::cuda::CUDAGraph graph;
  int steps_before_capture = kWarmupSteps;
  bool captured = false;
};
#else
struct DeviceSteps::Graph {};
#endif

DeviceSteps::DeviceSteps(TrainingEngine& engine, int64_t members, double step_size,
                         double escape_radius, bool stop_at_escape, bool cuda_graph)
    : engine_(engine),
      step_size_(step_size),
      escape_radius_(escape_radius),
      stop_at_escape_(stop_at_escape) {
  TORCH_CHECK(engine.runs_on_device(), "DeviceSteps – the ", engine_name(engine.kind()),
              " engine has no device steps");
  const auto& weights = engine.gradients().front();
  const auto on_device = torch::TensorOptions().device(weights.device());
  step_ = torch::zeros({}, on_device.dtype(torch::kInt64));
  scale_ = torch::zeros({members}, on_device.dtype(weights.scalar_type()));
  escaped_ = torch::zeros({members}, on_device.dtype(torch::kBool));
  finish_step_ = torch::full({members}, -1, on_device.dtype(torch::kInt64));
  diverged_ = torch::zeros({members}, on_device.dtype(torch::kBool));
  escape_step_ = torch::full({members}, -1, on_device.dtype(torch::kInt64));
  escape_norm_ = torch::zeros({members}, on_device.dtype(torch::kFloat64));
  loss_ = torch::zeros({members}, on_device.dtype(torch::kFloat64));
  norm_ = torch::zeros_like(loss_);
  gradient_norm_ = torch::zeros_like(loss_);
#ifdef NCFLAB_WITH_CUDA
  if (cuda_graph && weights.is_cuda()) graph_ = std::make_unique<Graph>();
#else
  (void)cuda_graph;
#endif
}

DeviceSteps::~DeviceSteps() = default;

bool DeviceSteps::uses_cuda_graph() const { return graph_ != nullptr; }

void DeviceSteps::step() {
  torch::NoGradGuard no_grad;
  step_.add_(1);
  const auto statistics = engine_.evaluate_on_device();
  const auto loss = statistics.loss.to(torch::kFloat64);
  const auto norm = statistics.norm.to(torch::kFloat64);
  const auto gradient_norm = statistics.gradient_norm.to(torch::kFloat64);
  const auto running = scale_ != 0;
  // Trainer::check_divergence: ‖w_k‖ + η‖∇ℓ‖ bounds ‖w_{k+1}‖.
  const auto bound = norm + step_size_ * gradient_norm;
  const auto diverges = running & (loss.isfinite() & bound.isfinite()).logical_not();
  // Trainer::check_escape, for the members the divergence check left running.
  const auto escapes =
      running & diverges.logical_not() & escaped_.logical_not() & (norm >= escape_radius_);
  escape_step_.copy_(torch::where(escapes, step_, escape_step_));
  escape_norm_.copy_(torch::where(escapes, norm, escape_norm_));
  escaped_.logical_or_(escapes);
  const auto finishes = stop_at_escape_ ? diverges | escapes : diverges;
  finish_step_.copy_(torch::where(finishes, step_, finish_step_));
  diverged_.logical_or_(diverges);
  // Statistics of every member evaluated while running: a finished member keeps its last.
  loss_.copy_(torch::where(running, loss, loss_));
  norm_.copy_(torch::where(running, norm, norm_));
  gradient_norm_.copy_(torch::where(running, gradient_norm, gradient_norm_));
  scale_.masked_fill_(finishes, 0);
  engine_.update_on_device(scale_);
}

void DeviceSteps::next_step() {
#ifdef NCFLAB_WITH_CUDA
  if (graph_) {
    if (graph_->captured) {
      graph_->graph.replay();
      return;
    }
    if (graph_->steps_before_capture > 0) {
      --graph_->steps_before_capture;
      step();
      return;
    }
    // Capture on a side stream (a capture may not use the legacy default stream); the
    // device synchronisations happen once per run.
    c10::cuda::device_synchronize();
    {
      c10::cuda::CUDAStreamGuard side(c10::cuda::getStreamFromPool());
      graph_->graph.capture_begin();
      step();
      graph_->graph.capture_end();
    }
    c10::cuda::device_synchronize();
    graph_->captured = true;
    graph_->graph.replay();  // capturing recorded the step without running it
    return;
  }
#endif
  step();
}

StepChunk DeviceSteps::run(int64_t k, int64_t until, const std::vector<uint8_t>& active,
                           const std::vector<EscapeRecord>& escape) {
  TORCH_CHECK(until > k, "DeviceSteps::run – until (", until, ") must be after k (", k, ")");
  torch::NoGradGuard no_grad;
  const auto members = static_cast<size_t>(scale_.size(0));
  std::vector<double> scale(members);
  std::vector<uint8_t> escaped(members);
  for (size_t s = 0; s < members; ++s) {
    scale[s] = active[s] ? step_size_ : 0.0;
    escaped[s] = escape[s].step >= 0;
  }
  // In place: a captured graph reads these tensors' storage.
  scale_.copy_(torch::tensor(scale, torch::kFloat64));
  escaped_.copy_(torch::tensor(std::vector<int64_t>(escaped.begin(), escaped.end())) != 0);
  step_.fill_(k);
  finish_step_.fill_(-1);
  diverged_.fill_(false);
  escape_step_.fill_(-1);
  engine_.update_on_device(scale_);  // w_k → w_{k+1}, from the host's evaluation at k
  for (int64_t i = k + 1; i < until; ++i) next_step();

  // One transfer (steps below 2^53 are exact in float64).
  const auto host =
      torch::stack({finish_step_.to(torch::kFloat64), diverged_.to(torch::kFloat64),
                    escape_step_.to(torch::kFloat64), escape_norm_, loss_, norm_, gradient_norm_})
          .to(torch::kCPU);
  const auto at = host.accessor<double, 2>();
  StepChunk chunk;
  for (size_t s = 0; s < members; ++s) {
    const auto i = static_cast<int64_t>(s);
    chunk.finish_step.push_back(static_cast<int64_t>(at[0][i]));
    chunk.diverged.push_back(at[1][i] != 0);
    chunk.escape_step.push_back(static_cast<int64_t>(at[2][i]));
    chunk.escape_norm.push_back(at[3][i]);
    chunk.loss.push_back(at[4][i]);
    chunk.norm.push_back(at[5][i]);
    chunk.gradient_norm.push_back(at[6][i]);
  }
  return chunk;
}

}  // namespace ncflab
