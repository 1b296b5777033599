// The run directory (SPEC §5): where a command's results go, the names of its files,
// and the files a run writes before it trains (config, inputs, weights_init, meta).
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "ncflab/core/directory_lock.h"
#include "ncflab/experiment/config.h"
#include "ncflab/model/data.h"
#include "ncflab/train/engine.h"

namespace ncflab {

/// Files of a run directory.
inline constexpr const char* kConfigFile = "config.yaml";
inline constexpr const char* kSummaryFile = "summary.json";
inline constexpr const char* kCheckpointFile = "checkpoint.pt";
inline constexpr const char* kMetricsFile = "metrics.csv";

/// What a command writes into its output directory.
enum class OutputKind { run, kkt, flow, sweep };

/// A command's output directory, locked against other ncflab processes while this lives.
struct OutputDirectory {
  std::filesystem::path path;
  std::vector<DirectoryLock> locks;  // the directory's, and its parent's for kkt/ and flow/
};

/// Creates (or takes) the output directory of a command, locks it and writes the resolved
/// config.yaml there. `out` empty: runs/<name>/<kind>_<YYYY-mm-dd_HH-MM-SS>/ (a run's has no
/// prefix). A directory holding ncflab's outputs is bad input unless `overwrite`, which
/// removes them and says which on `err`. kkt and flow given a directory that holds a run
/// or a sweep write into its subdirectory kkt/ or flow/ instead (and say so on `err`).
OutputDirectory prepare_output_directory(const Config& config, OutputKind kind,
                                         const std::string& out, bool overwrite, std::ostream& err);

/// ncflab's outputs in `directory`: the files and folders its commands write there (a
/// sweep's point directories among them), sorted; not the lock file, not foreign files.
std::vector<std::filesystem::path> ncflab_outputs(const std::filesystem::path& directory);

/// What a fresh run writes before training: weights_init.pt ({"W1": [S, k_1, d], …}),
/// data.pt (the data exactly as trained on, float64) and overrides.txt (one per line).
void write_run_inputs(const std::filesystem::path& directory,
                      const std::vector<torch::Tensor>& initial_weights, const Dataset& data,
                      const std::vector<std::string>& overrides);

/// What a run records of its inputs at the start, so that a resume can tell a changed input
/// from the one it started with: config.yaml as on disk, and the data as trained on (after
/// normalisation; a changed CSV file or generator shows here).
struct InputFingerprints {
  std::string config;
  std::string data;
};
InputFingerprints fingerprint_inputs(const std::filesystem::path& directory, const Dataset& data);

/// Refuses to resume (InputError naming what changed, and --force) when meta.json's
/// fingerprints differ from `now`; with `force` says so on `err` and goes on. A meta.json
/// without fingerprints (an older run, or one stopped before writing it) is not checked.
void check_inputs_unchanged(const std::filesystem::path& directory, const InputFingerprints& now,
                            bool force, std::ostream& err);

/// meta.json: ncflab and LibTorch versions, git revision, device, threads, engine, dtype,
/// and the inputs' fingerprints.
void write_run_meta(const std::filesystem::path& directory, const torch::Device& device,
                    torch::Dtype dtype, EngineKind engine, const InputFingerprints& inputs);

}  // namespace ncflab
