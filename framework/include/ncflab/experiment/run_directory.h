// The run directory (SPEC §5): where a command's results go, the names of its files,
// and the files a run writes before it trains (config, inputs, weights_init, meta).
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

#include "ncflab/experiment/config.h"
#include "ncflab/model/data.h"
#include "ncflab/train/engine.h"

namespace ncflab {

/// Files of a run directory.
inline constexpr const char* kConfigFile = "config.yaml";
inline constexpr const char* kSummaryFile = "summary.json";
inline constexpr const char* kCheckpointFile = "checkpoint.pt";
inline constexpr const char* kMetricsFile = "metrics.csv";

/// Creates the output directory of a command and writes the resolved config.yaml there.
/// `out` empty: runs/<name>/<kind>_<YYYY-mm-dd_HH-MM-SS>/ (no prefix when `kind` is
/// empty). A directory that already holds `product` (e.g. kkt.json) is bad input unless
/// `overwrite`.
std::filesystem::path prepare_output_directory(const Config& config, const std::string& kind,
                                               const std::string& out, bool overwrite,
                                               const std::string& product);

/// What a fresh run writes before training: weights_init.pt ({"W1": [S, k_1, d], …}),
/// data.pt (the data exactly as trained on, float64) and overrides.txt (one per line).
void write_run_inputs(const std::filesystem::path& directory,
                      const std::vector<torch::Tensor>& initial_weights, const Dataset& data,
                      const std::vector<std::string>& overrides);

/// meta.json: ncflab and LibTorch versions, git revision, device, threads, engine, dtype.
void write_run_meta(const std::filesystem::path& directory, const torch::Device& device,
                    torch::Dtype dtype, EngineKind engine);

}  // namespace ncflab
