// Run directories: creating them (never clobbering a finished result unasked) and the
// files a run writes before its first step.
#include "ncflab/experiment/run_directory.h"

#include <ATen/Parallel.h>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <torch/version.h>

#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>

#include "ncflab/core/errors.h"
#include "ncflab/core/files.h"
#include "ncflab/core/version.h"
#include "ncflab/model/feedforward.h"

namespace ncflab {

std::filesystem::path prepare_output_directory(const Config& config, const std::string& kind,
                                               const std::string& out, bool overwrite,
                                               const std::string& product) {
  std::filesystem::path directory;
  if (out.empty()) {
    const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm local{};
    localtime_r(&now, &local);  // fmt 12 (PyTorch 2.x bundles it) has no fmt::localtime
    const std::string stamp = fmt::format("{:%Y-%m-%d_%H-%M-%S}", local);
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
  write_file_atomically(directory / kConfigFile, config_to_yaml(config));
  return directory;
}

void write_run_inputs(const std::filesystem::path& directory,
                      const std::vector<torch::Tensor>& initial_weights, const Dataset& data,
                      const std::vector<std::string>& overrides) {
  save_tensor_dict(directory / "weights_init.pt", named_layers(initial_weights));
  // The data exactly as trained on (after normalisation): the PyTorch baseline and
  // report scripts read it, and synthetic data need not be regenerated elsewhere.
  save_tensor_dict(directory / "data.pt",
                   {{"inputs", data.inputs.to(torch::kCPU, torch::kFloat64)},
                    {"labels", data.labels.to(torch::kCPU, torch::kFloat64)}});
  std::string lines;
  for (const auto& assignment : overrides) lines += assignment + "\n";
  write_file_atomically(directory / "overrides.txt", lines);
}

void write_run_meta(const std::filesystem::path& directory, const torch::Device& device,
                    torch::Dtype dtype, EngineKind engine) {
  const nlohmann::json meta = {{"ncflab", NCFLAB_VERSION},
                               {"git", NCFLAB_GIT_DESCRIBE},
                               {"libtorch", TORCH_VERSION},
                               {"device", device.str()},
                               {"cuda_available", torch::cuda::is_available()},
                               {"threads", at::get_num_threads()},
                               {"engine", engine_name(engine)},
                               {"dtype", dtype == torch::kFloat64 ? "float64" : "float32"}};
  write_file_atomically(directory / "meta.json", meta.dump(2) + "\n");
}

}  // namespace ncflab
