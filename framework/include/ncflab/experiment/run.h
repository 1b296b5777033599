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
  /// Continue from the checkpoint instead of starting at w_0.
  bool resume = false;
  /// Where the whole ensemble's checkpoint goes (every train.checkpoint_every steps and on
  /// an interrupt) and is resumed from; empty: DIRECTORY/checkpoint.pt for a single run,
  /// none for a batch.
  std::filesystem::path checkpoint;
  /// Redraw the progress line in place (stderr is a terminal).
  bool terminal = false;
  /// The command line's overrides, recorded in overrides.txt.
  std::vector<std::string> overrides;
  /// Resume even when the config or the data changed since the run started.
  bool force = false;
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
/// exactly as run_experiment would; with `settings.checkpoint` an interrupted batch resumes
/// (`settings.resume`) to the same weights as an uninterrupted one.
std::vector<RunOutcome> run_batch(const std::vector<RunSpec>& runs, const RunSettings& settings,
                                  std::ostream& out, std::ostream& err);

}  // namespace ncflab
