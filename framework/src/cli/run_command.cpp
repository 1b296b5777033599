// `ncflab run CONFIG [overrides] [--out DIR]` and `ncflab run --resume RUN_DIR`: a
// run directory prepared (or found) and the experiment run into it.
#include <fmt/format.h>

#include <ostream>
#include <sstream>

#include "ncflab/cli/commands.h"
#include "ncflab/core/directory_lock.h"
#include "ncflab/core/errors.h"
#include "ncflab/core/files.h"
#include "ncflab/experiment/run_directory.h"

namespace ncflab {
namespace {

nlohmann::json read_json(const std::filesystem::path& path) {
  const std::string text = read_whole_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    throw InputError({path.string(), 0}, "", "a JSON file written by ncflab", "unreadable JSON");
  }
}

// overrides.txt of a run, one assignment a line (absent before the run wrote its inputs).
std::vector<std::string> read_overrides(const std::filesystem::path& directory) {
  std::vector<std::string> overrides;
  if (!std::filesystem::exists(directory / "overrides.txt")) return overrides;
  std::istringstream lines(read_whole_file(directory / "overrides.txt"));
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) overrides.push_back(line);
  }
  return overrides;
}

RunOutcome resume_run(const RunArguments& arguments, std::ostream& out, std::ostream& err) {
  const std::filesystem::path directory = arguments.resume;
  const SourceLocation where{"command line", 0};
  if (!arguments.overrides.empty() || !arguments.config_path.empty()) {
    throw InputError(where, "--resume",
                     "no config or overrides (the run's own config.yaml is used)",
                     fmt::format("'{}'", arguments.config_path.empty() ? arguments.overrides.front()
                                                                       : arguments.config_path));
  }
  if (!std::filesystem::is_regular_file(directory / kConfigFile)) {
    throw InputError(where, "--resume", "a run directory holding config.yaml",
                     fmt::format("'{}'", directory.string()));
  }
  const auto lock = DirectoryLock::acquire(directory);
  const Config config = load_config((directory / kConfigFile).string());
  RunSettings settings;
  settings.terminal = arguments.terminal;
  settings.force = arguments.force;
  if (!std::filesystem::exists(directory / kCheckpointFile)) {
    std::string status = "none";
    if (std::filesystem::exists(directory / kSummaryFile)) {
      status = read_json(directory / kSummaryFile).value("status", std::string("unknown"));
    }
    if (status != "none" && status != "interrupted") {
      throw InputError({(directory / kCheckpointFile).string(), 0}, "--resume",
                       "a run directory with a checkpoint to continue from",
                       fmt::format("no checkpoint.pt (the run ended with status {})", status));
    }
    // Stopped before its first checkpoint: the run starts over, from the same config and
    // so the same initial weights and numbers.
    out << fmt::format("run: {} holds no checkpoint yet; starting the run over\n",
                       directory.string());
    settings.overrides = read_overrides(directory);
    return run_experiment(config, directory, settings, out, err);
  }
  settings.resume = true;
  return run_experiment(config, directory, settings, out, err);
}

}  // namespace

RunOutcome run_command(const RunArguments& arguments, std::ostream& out, std::ostream& err) {
  if (!arguments.resume.empty()) return resume_run(arguments, out, err);
  if (arguments.config_path.empty()) {
    throw InputError({"command line", 0}, "CONFIG", "a config file (or --resume RUN_DIR)", "none");
  }
  const Config config = load_config(arguments.config_path, arguments.overrides);
  const OutputDirectory output =
      prepare_output_directory(config, OutputKind::run, arguments.out, arguments.overwrite, err);
  const auto& directory = output.path;
  RunSettings settings;
  settings.terminal = arguments.terminal;
  settings.overrides = arguments.overrides;
  return run_experiment(config, directory, settings, out, err);
}

}  // namespace ncflab
