// A sweep directory (SPEC §5): plan.json, one run directory per grid point, the batches'
// checkpoints and sweep.csv. The plan on disk is what lets any process (a SLURM array
// task, a second process on the same machine, a resumed sweep) run its share of the grid,
// and anyone collect what has finished.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "ncflab/experiment/sweep_plan.h"

namespace ncflab {

inline constexpr const char* kSweepPlanFile = "plan.json";
inline constexpr const char* kSweepCsvFile = "sweep.csv";

/// A sweep's plan as its directory records it (plan.json).
struct SweepManifest {
  std::string config_path;               ///< the config the grid was planned from
  std::vector<std::string> assignments;  ///< the command line's key=values
  std::vector<std::pair<std::string, std::vector<std::string>>> axes;  ///< swept keys
  std::vector<SweepPoint> points;                   ///< the grid, last axis fastest
  std::vector<std::string> names;                   ///< each point's run directory
  std::vector<std::vector<std::string>> overrides;  ///< each point's overrides
  std::vector<std::vector<size_t>> batches;         ///< points that train as one ensemble
  std::vector<std::vector<size_t>> tasks;           ///< the batches each task runs, in order
};

/// `batches` batches in at most `tasks` contiguous shares of near-equal size; 0 or more
/// tasks than batches: one task per batch.
std::vector<std::vector<size_t>> split_into_tasks(size_t batches, size_t tasks);

/// Writes every point's run directory (its config.yaml, nothing of an earlier sweep) and
/// plan.json under `root`, which must exist, in `tasks` shares (split_into_tasks).
/// `progress(done, total)` is called after each directory (tens of thousands take seconds).
/// A SIGINT/SIGTERM stops it between two directories (Interrupted, "sweep planning"), before
/// plan.json, so a half-written sweep is never taken for one that can be resumed.
SweepManifest write_sweep_plan(const SweepPlan& plan, const std::string& config_path,
                               const std::vector<std::string>& assignments, size_t tasks,
                               const std::filesystem::path& root,
                               const std::function<void(size_t done, size_t total)>& progress = {});

/// `root`'s plan.json; InputError when `root` is not a sweep directory.
SweepManifest read_sweep_plan(const std::filesystem::path& root);

/// Whether the run of `point` has finished: its summary.json holds a final status (not
/// interrupted or failed).
bool point_finished(const std::filesystem::path& root, const SweepManifest& manifest, size_t point);
bool batch_finished(const std::filesystem::path& root, const SweepManifest& manifest, size_t batch);
bool task_finished(const std::filesystem::path& root, const SweepManifest& manifest, size_t task);

/// Where batch `batch` keeps the whole ensemble's checkpoint while it trains.
std::filesystem::path batch_checkpoint(const std::filesystem::path& root, size_t batch);

/// What sweep.csv holds after collect_sweep.
struct SweepCollection {
  size_t rows = 0;                 ///< points with a summary.json (any status)
  std::vector<size_t> unfinished;  ///< points whose run has not finished
};

/// sweep.csv's row of `point`, from its summary.json; empty when it has none.
std::string sweep_row(const std::filesystem::path& root, const SweepManifest& manifest,
                      size_t point);

/// Writes sweep.csv: the header and `rows` (one per point; empty: none).
void write_sweep_csv(const std::filesystem::path& root, const SweepManifest& manifest,
                     const std::vector<std::string>& rows);

/// Writes sweep.csv from every point's summary.json (points without one have no row).
SweepCollection collect_sweep(const std::filesystem::path& root, const SweepManifest& manifest);

}  // namespace ncflab
