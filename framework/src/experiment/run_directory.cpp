// Run directories: creating them (never clobbering a finished result unasked) and the
// files a run writes before its first step.
#include "ncflab/experiment/run_directory.h"

#include <ATen/Parallel.h>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>
#include <set>

#include "ncflab/core/cpu_isa.h"
#include "ncflab/core/errors.h"
#include "ncflab/core/files.h"
#include "ncflab/core/fingerprint.h"
#include "ncflab/core/version.h"
#include "ncflab/model/feedforward.h"

namespace ncflab {

namespace {

namespace fs = std::filesystem;

// Every file and folder an ncflab command writes into its directory.
const std::set<std::string>& output_names() {
  static const std::set<std::string> names{kConfigFile,
                                           kSummaryFile,
                                           kCheckpointFile,
                                           kMetricsFile,
                                           "meta.json",
                                           "overrides.txt",
                                           "data.pt",
                                           "weights_init.pt",
                                           "weights_final.pt",
                                           "weights_trajectory.pt",
                                           "kkt.json",
                                           "kkt_points.pt",
                                           "flow.json",
                                           "flow_trajectory.csv",
                                           "flow_direction.pt",
                                           "plan.json",
                                           "sweep.csv",
                                           "checkpoints",
                                           "slurm",
                                           "report",
                                           "kkt",
                                           "flow"};
  return names;
}

// Files that say a run or a sweep lives in a directory (not only a config).
bool holds_run_or_sweep(const fs::path& directory) {
  for (const char* name : {kSummaryFile, kCheckpointFile, kMetricsFile, "weights_init.pt",
                           "weights_final.pt", "plan.json", "sweep.csv"}) {
    if (fs::exists(directory / name)) return true;
  }
  return false;
}

const char* kind_name(OutputKind kind) {
  switch (kind) {
    case OutputKind::run:
      return "run";
    case OutputKind::kkt:
      return "kkt";
    case OutputKind::flow:
      return "flow";
    case OutputKind::sweep:
      return "sweep";
  }
  return "";
}

fs::path default_directory(const Config& config, OutputKind kind) {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm local{};
  localtime_r(&now, &local);  // fmt 12 (PyTorch 2.x bundles it) has no fmt::localtime
  const std::string stamp = fmt::format("{:%Y-%m-%d_%H-%M-%S}", local);
  const std::string base =
      kind == OutputKind::run ? stamp : fmt::format("{}_{}", kind_name(kind), stamp);
  fs::path directory = fs::path("runs") / config.name / base;
  // Two commands started within the same second get their own directories.
  for (int i = 2; fs::exists(directory); ++i) {
    directory = fs::path("runs") / config.name / fmt::format("{}_{}", base, i);
  }
  return directory;
}

void create_output_directory(const fs::path& directory) {
  std::error_code error;
  fs::create_directories(directory, error);
  if (error || !fs::is_directory(directory)) {
    throw InputError(
        {"command line", 0}, "--out", "a directory ncflab can create",
        fmt::format("'{}' ({})", directory.string(), error ? error.message() : "not a directory"));
  }
}

std::string listing(const std::vector<fs::path>& paths, size_t shown) {
  std::string names;
  for (size_t i = 0; i < paths.size() && i < shown; ++i) {
    names += (i == 0 ? "" : ", ") + paths[i].filename().string();
  }
  if (paths.size() > shown) names += fmt::format(" and {} more", paths.size() - shown);
  return names;
}

}  // namespace

std::vector<fs::path> ncflab_outputs(const fs::path& directory) {
  std::vector<fs::path> outputs;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(directory, error)) {
    const std::string name = entry.path().filename().string();
    const bool temporary = name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0;
    const bool known = output_names().count(temporary ? name.substr(0, name.size() - 4) : name);
    // A sweep's points are run directories of their own.
    const bool point = entry.is_directory() && fs::exists(entry.path() / kConfigFile);
    if (known || point) outputs.push_back(entry.path());
  }
  std::sort(outputs.begin(), outputs.end());
  return outputs;
}

OutputDirectory prepare_output_directory(const Config& config, OutputKind kind,
                                         const std::string& out, bool overwrite,
                                         std::ostream& err) {
  fs::path directory = out.empty() ? default_directory(config, kind) : fs::path(out);
  create_output_directory(directory);
  std::vector<DirectoryLock> locks{DirectoryLock::acquire(directory)};
  // A KKT search or a flow about a run goes beside the run's files, never over them.
  if ((kind == OutputKind::kkt || kind == OutputKind::flow) && holds_run_or_sweep(directory)) {
    directory /= kind_name(kind);
    err << fmt::format(
        "{}: '{}' holds a {}; writing into {}\n", kind_name(kind), directory.parent_path().string(),
        fs::exists(directory.parent_path() / "plan.json") ? "sweep" : "run", directory.string());
    create_output_directory(directory);
    locks.push_back(DirectoryLock::acquire(directory));
  }
  const auto outputs = ncflab_outputs(directory);
  if (!outputs.empty()) {
    if (!overwrite) {
      throw InputError({"command line", 0}, "--out",
                       "a directory without ncflab's outputs (or --overwrite to replace them)",
                       fmt::format("'{}' holding {}", directory.string(), listing(outputs, 6)));
    }
    err << fmt::format("ncflab: --overwrite: removing {} from {}\n", listing(outputs, 12),
                       directory.string());
    for (const auto& output : outputs) fs::remove_all(output);
  }
  write_file_atomically(directory / kConfigFile, config_to_yaml(config));
  return {directory, std::move(locks)};
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

InputFingerprints fingerprint_inputs(const fs::path& directory, const Dataset& data) {
  std::string bytes;
  for (const auto& tensor : {data.inputs, data.labels}) {
    const auto values = tensor.to(torch::kCPU, torch::kFloat64).contiguous();
    bytes.append(static_cast<const char*>(values.data_ptr()),
                 static_cast<size_t>(values.numel()) * sizeof(double));
  }
  return {fingerprint(read_whole_file(directory / kConfigFile)), fingerprint(bytes)};
}

void check_inputs_unchanged(const fs::path& directory, const InputFingerprints& now, bool force,
                            std::ostream& err) {
  const auto path = directory / "meta.json";
  if (!fs::exists(path)) return;
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(read_whole_file(path));
  } catch (const nlohmann::json::exception&) {
    throw InputError({path.string(), 0}, "", "meta.json as ncflab wrote it", "unreadable JSON");
  }
  if (!meta.is_object()) return;
  std::vector<std::string> changed;
  if (meta.value("config_fingerprint", now.config) != now.config) {
    changed.push_back("config.yaml");
  }
  if (meta.value("data_fingerprint", now.data) != now.data) changed.push_back("the data");
  if (changed.empty()) return;
  const std::string what = fmt::format("{}", fmt::join(changed, " and "));
  if (force) {
    err << fmt::format(
        "ncflab: warning: {}: {} changed since the run started; resuming anyway "
        "(--force)\n",
        directory.string(), what);
    return;
  }
  throw InputError({path.string(), 0}, "--resume",
                   "the inputs the run started with (or --force to continue with the new ones)",
                   fmt::format("{} changed since", what));
}

void write_run_meta(const fs::path& directory, const torch::Device& device, torch::Dtype dtype,
                    EngineKind engine, const InputFingerprints& inputs) {
  const nlohmann::json meta = {{"ncflab", NCFLAB_VERSION},
                               {"git", NCFLAB_GIT_DESCRIBE},
                               {"libtorch", TORCH_VERSION},
                               {"device", device.str()},
                               {"cuda_available", torch::cuda::is_available()},
                               {"threads", at::get_num_threads()},
                               {"engine", engine_name(engine)},
                               {"cpu_isa", cpu_isa_name(active_cpu_isa())},
                               {"dtype", dtype == torch::kFloat64 ? "float64" : "float32"},
                               {"config_fingerprint", inputs.config},
                               {"data_fingerprint", inputs.data}};
  write_file_atomically(directory / "meta.json", meta.dump(2) + "\n");
}

}  // namespace ncflab
