// Where commands write their results, and how tensors are written so that Python's
// torch.load reads them (torch::pickle_save of a dict, written atomically).
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ncflab/config.h"
#include "ncflab/flow.h"

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

/// "W1", "W2", … for layer index 0, 1, … (the keys of every weights file).
std::string layer_name(size_t layer);

/// {"W1": layers[0], …}: the dict save_tensor_dict writes for per-layer weights.
std::vector<std::pair<std::string, torch::Tensor>> named_layers(const std::vector<torch::Tensor>& layers);

/// JSON has no NaN: a non-finite number (an undefined time, say) becomes null.
nlohmann::json number_or_null(double value);

/// How a member's NCF flow ended, as flow.json and summary.json report it: status,
/// blowup_time, escape_time, collapsed, ncf, residual.
nlohmann::json flow_member_json(const FlowMember& member);

/// Reads a dict written by save_tensor_dict.
std::vector<std::pair<std::string, torch::Tensor>> load_tensor_dict(const std::filesystem::path& path);

}  // namespace ncflab
