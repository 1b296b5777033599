// How ncflab writes files: atomically (temporary file + rename, so a reader never sees
// half a file), and tensors as dicts that Python's torch.load reads (torch::pickle_save's format).
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace ncflab {

/// The whole of the file at `path` (opened: the caller has checked it exists). A read error
/// is std::runtime_error "PATH: read error (...)", never a short file.
std::string read_whole_file(const std::filesystem::path& path);

/// Writes `text` to `path` through a temporary file and a rename.
void write_file_atomically(const std::filesystem::path& path, const std::string& text);

/// Saves {name: tensor} as torch::pickle_save does, untagged (floating point as float64, integers
/// kept; CPU); Python reads it with torch.load(path). Written atomically.
void save_tensor_dict(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors);

/// Reads a dict written by save_tensor_dict (or Python's torch.save of a dict of tensors).
/// Throws InputError naming the file when it is missing or not such a dict.
std::vector<std::pair<std::string, torch::Tensor>> load_tensor_dict(
    const std::filesystem::path& path);

}  // namespace ncflab
