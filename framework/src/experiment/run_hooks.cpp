// Turning hooks.* into installed hooks: what each compares against (the reference flow,
// KKT points) and where each writes (checkpoint.pt, the progress line).
#include "ncflab/experiment/run_hooks.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ostream>

#include "ncflab/experiment/checkpoint.h"
#include "ncflab/experiment/problem.h"
#include "ncflab/experiment/reference_flow.h"
#include "ncflab/ncf/kkt.h"
#include "ncflab/ncf/time_scale.h"
#include "ncflab/train/hooks/checkpoint_hook.h"
#include "ncflab/train/hooks/progress_hook.h"

namespace ncflab {
namespace {

std::shared_ptr<KktComparisonHook> kkt_comparison_hook(const HookInputs& inputs,
                                                       std::ostream& out) {
  const Config& config = *inputs.config;
  KktComparisonHook::Reference reference;
  const bool flows = config.train.integrator() == Integrator::gradient_flow;
  reference.log_every = flows ? 1 : config.train.log_every();
  if (inputs.flow != nullptr) {
    reference.flow_direction = inputs.flow->direction;
    for (const auto& member : inputs.flow->members)
      reference.flow_samples.push_back(member.samples);
    reference.sample_times = sampled_row_times(config, inputs.deltas, inputs.model->total_degree(),
                                               inputs.ncf->parameters());
  }
  if (config.hooks.kkt_search) {
    const auto search = search_kkt_points(*inputs.ncf, kkt_search_options(config));
    for (const auto& point : search.points) reference.kkt_points.push_back(point.direction);
    out << fmt::format(
        "  kkt      {} non-negative KKT points from {} starts{}\n", search.points.size(),
        search.restarts,
        search.points.empty() ? "" : fmt::format(", best N = {:.6g}", search.points.front().ncf));
  }
  const bool kinks =
      config.hooks.kink_residual == Switch::on ||
      (config.hooks.kink_residual == Switch::automatic && config.model.activation.p() == 1);
  return std::make_shared<KktComparisonHook>(inputs.ncf, reference,
                                             kinks ? config.kkt.kink_tol() : 0.0);
}

// The ETA aims at the latest escape the flow predicts (T*/δ^(L−2)), when it predicts one:
// the step (gradient descent) or row (gradient flow) it falls on.
int64_t expected_escape_step(const HookInputs& inputs) {
  const Config& config = *inputs.config;
  const int64_t total_degree = inputs.model->total_degree();
  int64_t expected = 0;
  if (inputs.flow == nullptr || total_degree <= 2) return expected;
  for (size_t s = 0; s < inputs.flow->members.size(); ++s) {
    const double blowup = inputs.flow->members[s].blowup_time;
    if (!std::isfinite(blowup)) continue;
    // Gradient flow's rows are log_interval apart on the flow's own clock.
    const double steps =
        config.train.integrator() == Integrator::gradient_flow
            ? blowup / config.train.log_interval()
            : training_time(blowup, inputs.deltas[s], total_degree) / config.train.step_size();
    expected = std::max(expected, static_cast<int64_t>(std::min(steps, 9e15)));
  }
  return expected;
}

}  // namespace

RunHooks install_run_hooks(Trainer& trainer, const HookInputs& inputs, std::ostream& out,
                           std::ostream& err) {
  const Config& config = *inputs.config;
  RunHooks hooks;
  if (config.hooks.layers) {
    hooks.layers =
        std::make_shared<LayerStatisticsHook>(inputs.model->depth(), inputs.model->hidden_layers());
    trainer.add_hook(hooks.layers);
  }
  if (config.hooks.kkt) {
    hooks.comparison = kkt_comparison_hook(inputs, out);
    trainer.add_hook(hooks.comparison);
  }
  if (config.train.snapshot_every > 0) {
    hooks.snapshots = std::make_shared<WeightSnapshotHook>(config.train.snapshot_every);
    trainer.add_hook(hooks.snapshots);
  }
  if (inputs.checkpoint) {
    const auto path = *inputs.checkpoint;
    trainer.add_hook(std::make_shared<CheckpointHook>(
        config.train.checkpoint_every,
        [path](const TrainState& state) { save_checkpoint(path, state, *state.weights); }));
  }
  if (config.hooks.progress != Switch::off) {
    trainer.add_hook(std::make_shared<ProgressHook>(
        err, inputs.terminal, std::chrono::duration<double>(config.hooks.progress_seconds),
        config.train.max_steps(), expected_escape_step(inputs),
        config.train.integrator() == Integrator::gradient_flow ? "row" : "step"));
  }
  return hooks;
}

}  // namespace ncflab
