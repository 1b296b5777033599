// Output directories and files. Everything lands through a temporary file and a
// rename, so an interrupted command never leaves a file that looks complete.
#include "ncflab/output.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <iterator>

#include "ncflab/errors.h"

namespace ncflab {

std::filesystem::path prepare_output_directory(const Config& config, const std::string& kind,
                                               const std::string& out, bool overwrite,
                                               const std::string& product) {
  std::filesystem::path directory;
  if (out.empty()) {
    const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    const std::string stamp = fmt::format("{:%Y-%m-%d_%H-%M-%S}", fmt::localtime(now));
    const std::string base = kind.empty() ? stamp : kind + "_" + stamp;
    directory = std::filesystem::path("runs") / config.name / base;
    // Two commands started within the same second get their own directories.
    for (int i = 2; std::filesystem::exists(directory); ++i) {
      directory = std::filesystem::path("runs") / config.name / fmt::format("{}_{}", base, i);
    }
  } else {
    directory = out;
  }
  if (std::filesystem::exists(directory / product) && !overwrite) {
    throw InputError({"command line", 0}, "--out",
                     fmt::format("a directory without {} (or --overwrite)", product),
                     fmt::format("'{}' already holds one", directory.string()));
  }
  std::error_code error;
  std::filesystem::create_directories(directory, error);
  if (error || !std::filesystem::is_directory(directory)) {
    throw InputError({"command line", 0}, "--out", "a directory ncflab can create",
                     fmt::format("'{}' ({})", directory.string(), error.message()));
  }
  write_file_atomically(directory / "config.yaml", config_to_yaml(config));
  return directory;
}

void write_file_atomically(const std::filesystem::path& path, const std::string& text) {
  const auto temporary = path.string() + ".tmp";
  {
    std::ofstream file(temporary, std::ios::binary | std::ios::trunc);
    TORCH_CHECK(file, "cannot write ", temporary);
    file << text;
    file.flush();
    TORCH_CHECK(file, "failed writing ", temporary);
  }
  std::filesystem::rename(temporary, path);
}

void save_tensor_dict(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [name, tensor] : tensors) {
    // Floating point as float64 (what Python compares against); integers (step numbers) kept.
    const auto dtype = tensor.is_floating_point() ? torch::kFloat64 : tensor.scalar_type();
    dict.insert(name, tensor.detach().to(torch::kCPU, dtype).contiguous());
  }
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  write_file_atomically(path, std::string(bytes.begin(), bytes.end()));
}

std::string layer_name(size_t layer) { return fmt::format("W{}", layer + 1); }

std::vector<std::pair<std::string, torch::Tensor>> named_layers(const std::vector<torch::Tensor>& layers) {
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (size_t l = 0; l < layers.size(); ++l) named.emplace_back(layer_name(l), layers[l]);
  return named;
}

nlohmann::json number_or_null(double value) {
  return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(nullptr);
}

nlohmann::json flow_member_json(const FlowMember& member) {
  return {{"status", flow_status_name(member.status)},
          {"blowup_time", number_or_null(member.blowup_time)},
          {"escape_time", number_or_null(member.escape_time)},
          {"collapsed", member.status == FlowStatus::collapsed},
          {"ncf", member.ncf},
          {"residual", member.residual}};
}

std::vector<std::pair<std::string, torch::Tensor>> load_tensor_dict(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    throw InputError({path.string(), 0}, "", "a readable tensor file", "no such file");
  }
  const std::vector<char> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  c10::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const c10::Error& e) {
    throw InputError({path.string(), 0}, "", "a dict of tensors written by torch.save or ncflab",
                     "an unreadable file");
  }
  if (!value.isGenericDict()) {
    throw InputError({path.string(), 0}, "", "a dict of tensors", value.tagKind());
  }
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& entry : value.toGenericDict()) {
    tensors.emplace_back(entry.key().toStringRef(), entry.value().toTensor());
  }
  return tensors;
}

}  // namespace ncflab
