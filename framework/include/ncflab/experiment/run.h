// One training run end to end (SPEC §5): config → problem → reference NCF flow from w0 →
// trainer with hooks → run directory (config.yaml, metrics.csv, summary.json, weights).
#pragma once

#include <filesystem>
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ncflab/experiment/config.h"

namespace ncflab {

struct RunSettings {
  /// Continue from DIRECTORY/checkpoint.pt instead of starting at w_0.
  bool resume = false;
  /// Redraw the progress line in place (stderr is a terminal).
  bool terminal = false;
  /// The command line's overrides, recorded in overrides.txt.
  std::vector<std::string> overrides;
};

struct RunOutcome {
  std::filesystem::path directory;
  std::string status;  ///< summary.json's status
  int signal = 0;      ///< SIGINT/SIGTERM that interrupted the run, else 0
  nlohmann::json summary;
};

/// Runs `config` into `directory` (which must exist and hold config.yaml). Results go to
/// `out`, progress and warnings to `err`. A failure marks summary.json "failed" and
/// rethrows; an interrupt writes checkpoint.pt and status "interrupted".
RunOutcome run_experiment(const Config& config, const std::filesystem::path& directory,
                          const RunSettings& settings, std::ostream& out, std::ostream& err);

/// One run of a batch: its own config, directory (holding config.yaml) and overrides.
struct RunSpec {
  Config config;
  std::filesystem::path directory;
  std::vector<std::string> overrides;
};

/// Trains batchable runs (batch_layout.h) as one ensemble and writes each run's directory
/// exactly as run_experiment would (no checkpoints: an interrupted batch is not resumable).
std::vector<RunOutcome> run_batch(const std::vector<RunSpec>& runs, const RunSettings& settings,
                                  std::ostream& out, std::ostream& err);

}  // namespace ncflab
