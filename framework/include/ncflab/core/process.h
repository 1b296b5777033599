// Child processes: a command run to completion with its output captured (sbatch, squeue),
// and commands started in the background with their output in a log file (a sweep's
// tasks as processes on one machine).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace ncflab {

/// What a finished command printed and how it ended.
struct ProcessResult {
  int exit_code = -1;  ///< 0–255, 128 + signal when a signal ended it, 127: not found
  std::string out;     ///< its standard output
  std::string err;     ///< its standard error
};

/// Runs `argv` (argv[0] looked up on PATH) to completion.
ProcessResult run_process(const std::vector<std::string>& argv);

/// Starts `argv` (argv[0] looked up on PATH) with stdout and stderr appended to `log`;
/// returns its process id.
pid_t start_process(const std::vector<std::string>& argv, const std::filesystem::path& log);

/// Waits for one started process to end without blocking longer than `seconds`; returns
/// its id and exit code (as ProcessResult::exit_code), or {0, 0} when none ended in time.
std::pair<pid_t, int> wait_for_process(double seconds);

/// This executable's path (for tasks that run ncflab again): $NCFLAB_EXECUTABLE when set,
/// else /proc/self/exe.
std::filesystem::path ncflab_executable();

/// A word for a POSIX shell: quoted when it holds anything but safe characters.
std::string shell_quote(const std::string& word);

}  // namespace ncflab
