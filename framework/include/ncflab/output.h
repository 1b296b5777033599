// Where commands write their results, and how tensors are written so that Python's
// torch.load reads them (torch::pickle_save of a dict, written atomically).
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "ncflab/config.h"

namespace ncflab {

/// Creates the output directory of a command and writes the resolved config.yaml there.
/// `out` empty: runs/<name>/<kind>_<YYYY-mm-dd_HH-MM-SS>/ (no prefix when `kind` is empty). A directory that already holds
/// `product` (e.g. kkt.json) is bad input unless `overwrite`.
std::filesystem::path prepare_output_directory(const Config& config, const std::string& kind,
                                               const std::string& out, bool overwrite,
                                               const std::string& product);

/// Writes `text` to `path` through a temporary file and a rename, so a reader never
/// sees half a file.
void write_file_atomically(const std::filesystem::path& path, const std::string& text);

/// Saves {name: tensor} with torch::pickle_save (float64, CPU); Python reads it with
/// torch.load(path). Written atomically.
void save_tensor_dict(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors);

/// Reads a dict written by save_tensor_dict.
std::vector<std::pair<std::string, torch::Tensor>> load_tensor_dict(const std::filesystem::path& path);

}  // namespace ncflab
