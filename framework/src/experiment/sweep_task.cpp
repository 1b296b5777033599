// A sweep task: each batch loads its points' configs from their run directories (written
// at planning time, so every task trains exactly what was planned) and trains them as one
// ensemble with a checkpoint beside the plan.
#include "ncflab/experiment/sweep_task.h"

#include <fmt/format.h>

#include <ostream>

#include "ncflab/experiment/run.h"
#include "ncflab/experiment/run_directory.h"

namespace ncflab {
namespace {

std::vector<RunSpec> batch_runs(const std::filesystem::path& root, const SweepManifest& manifest,
                                size_t batch) {
  std::vector<RunSpec> runs;
  for (size_t i : manifest.batches[batch]) {
    const auto directory = root / manifest.names[i];
    runs.push_back(
        {load_config((directory / kConfigFile).string()), directory, manifest.overrides[i]});
  }
  return runs;
}

std::string batch_label(const SweepManifest& manifest, size_t batch) {
  std::string labels;
  for (size_t i : manifest.batches[batch]) {
    std::string label;
    for (const auto& [key, value] : manifest.points[i]) label += fmt::format(" {}={}", key, value);
    labels += fmt::format("\n  run {}:{}", i + 1, label);
  }
  return labels;
}

}  // namespace

SweepTaskOutcome run_sweep_task(const std::filesystem::path& root, const SweepManifest& manifest,
                                size_t task, std::ostream& out, std::ostream& err,
                                const std::function<void(size_t)>& after_batch) {
  SweepTaskOutcome outcome;
  for (size_t batch : manifest.tasks.at(task)) {
    if (batch_finished(root, manifest, batch)) continue;
    const size_t size = manifest.batches[batch].size();
    RunSettings settings;
    settings.checkpoint = batch_checkpoint(root, batch);
    settings.resume = std::filesystem::exists(settings.checkpoint);
    std::filesystem::create_directories(settings.checkpoint.parent_path());
    out << fmt::format("sweep: {} {} run{} together:{}\n",
                       settings.resume ? "continuing" : "starting", size, size == 1 ? "" : "s",
                       batch_label(manifest, batch))
        << std::flush;
    try {
      const auto outcomes = run_batch(batch_runs(root, manifest, batch), settings, out, err);
      for (const auto& run : outcomes) {
        if (run.signal != 0) outcome.signal = run.signal;
      }
    } catch (const std::exception& e) {
      err << fmt::format("sweep: batch {} failed: {}\n", batch, e.what()) << std::flush;
      ++outcome.failed_batches;
    }
    if (after_batch) after_batch(batch);
    if (outcome.signal != 0) break;
  }
  return outcome;
}

}  // namespace ncflab
