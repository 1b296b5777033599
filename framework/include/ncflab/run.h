// One training run end to end (SPEC §5): config → problem → NCF flow from w0 → trainer
// with hooks → run directory (config.yaml, metrics.csv, summary.json, weights, meta).
#pragma once

#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ncflab/config.h"

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
  std::string status;   ///< summary.json's status
  int signal = 0;       ///< SIGINT/SIGTERM that interrupted the run, else 0
  nlohmann::json summary;
};

/// Runs `config` into `directory` (which must exist and hold config.yaml). Results go to
/// `out`, progress and warnings to `err`. A failure marks summary.json "failed" and
/// rethrows; an interrupt writes checkpoint.pt and status "interrupted".
RunOutcome run_experiment(const Config& config, const std::filesystem::path& directory,
                          const RunSettings& settings, std::ostream& out, std::ostream& err);

/// One run of a batch: its own config, directory (holding config.yaml) and overrides.
struct RunGroup {
  Config config;
  std::filesystem::path directory;
  std::vector<std::string> overrides;
};

/// Whether runs with these configs can train as one ensemble: they differ at most in
/// init.scale, and in seed when the data come from a CSV file (synthetic data depend on
/// the seed). Member j of a run with seed s starts from w0 of seed s + j either way.
bool batchable(const Config& a, const Config& b);

/// Trains batchable runs as one ensemble and writes each run's directory exactly as
/// run_experiment would (no checkpoints: an interrupted batch is not resumable).
std::vector<RunOutcome> run_batch(const std::vector<RunGroup>& groups, const RunSettings& settings,
                                  std::ostream& out, std::ostream& err);

/// Files of a run directory.
inline constexpr const char* kSummaryFile = "summary.json";
inline constexpr const char* kCheckpointFile = "checkpoint.pt";

}  // namespace ncflab
