// One task of a sweep: the batches of its share of plan.json that have not finished, each
// from its checkpoint when an earlier attempt was interrupted. The in-process sweep, the
// processes of `--launcher local` and SLURM's array tasks all run this.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <iosfwd>

#include "ncflab/experiment/sweep_directory.h"

namespace ncflab {

struct SweepTaskOutcome {
  int signal = 0;             ///< SIGINT/SIGTERM that stopped the task, else 0
  size_t failed_batches = 0;  ///< batches whose run failed (summary.json says why)
};

/// Runs task `task` of the sweep in `root`: finished batches are skipped, interrupted ones
/// continue from their checkpoint, the others start afresh; `after_batch(b)` is called
/// after each batch b that ran. Stops at an interrupt; a failed batch is reported on `err` and the
/// next one runs.
SweepTaskOutcome run_sweep_task(const std::filesystem::path& root, const SweepManifest& manifest,
                                size_t task, std::ostream& out, std::ostream& err,
                                const std::function<void(size_t)>& after_batch = {});

}  // namespace ncflab
