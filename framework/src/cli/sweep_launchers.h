// Launchers of a planned sweep's tasks (internal to the sweep command): processes on this
// machine, or a SLURM job array. Each task runs `ncflab sweep --task I DIR`.
#pragma once

#include <cstddef>
#include <filesystem>
#include <iosfwd>
#include <string>
#include <vector>

#include "ncflab/experiment/sweep_directory.h"

namespace ncflab {

/// Runs `tasks` of the sweep in `root` as at most `jobs` processes at once (logs in
/// root/logs/task_I.log) and waits for them. Returns the signal that interrupted the wait
/// (the running tasks are stopped with SIGTERM and checkpoint), else 0.
int launch_local(const std::filesystem::path& root, const std::vector<size_t>& tasks, size_t jobs,
                 std::ostream& out, std::ostream& err);

struct SlurmLaunch {
  std::vector<std::string> options;  ///< sbatch options: the config's, then --sbatch's
  bool wait = true;                  ///< poll until every task has left the queue
  double poll_seconds = 5;           ///< between two looks at squeue
};

/// Writes root/slurm/sweep.sbatch, a job array over `tasks`, submits it with sbatch and
/// (unless !launch.wait) waits, printing the tasks pending, running, done and failed.
/// A refused submission is an InputError carrying sbatch's message. Returns the signal that
/// interrupted the wait (the job keeps running), else 0.
int launch_slurm(const std::filesystem::path& root, const SweepManifest& manifest,
                 const std::vector<size_t>& tasks, const SlurmLaunch& launch, std::ostream& out,
                 std::ostream& err);

}  // namespace ncflab
