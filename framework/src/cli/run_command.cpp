// `ncflab run CONFIG [overrides] [--out DIR]` and `ncflab run --resume RUN_DIR`: a
// run directory prepared (or found) and the experiment run into it.
#include <fmt/format.h>

#include <fstream>
#include <ostream>

#include "ncflab/cli/commands.h"
#include "ncflab/core/errors.h"
#include "ncflab/experiment/run_directory.h"

namespace ncflab {
namespace {

nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream file(path);
  try {
    return nlohmann::json::parse(file);
  } catch (const nlohmann::json::exception&) {
    throw InputError({path.string(), 0}, "", "a JSON file written by ncflab", "unreadable JSON");
  }
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
  if (!std::filesystem::exists(directory / kCheckpointFile)) {
    std::string found = "no checkpoint.pt";
    if (std::filesystem::exists(directory / kSummaryFile)) {
      found +=
          fmt::format(" (the run ended with status {})",
                      read_json(directory / kSummaryFile).value("status", std::string("unknown")));
    }
    throw InputError({(directory / kCheckpointFile).string(), 0}, "--resume",
                     "a run directory with a checkpoint to continue from", found);
  }
  const Config config = load_config((directory / kConfigFile).string());
  RunSettings settings;
  settings.resume = true;
  settings.terminal = arguments.terminal;
  return run_experiment(config, directory, settings, out, err);
}

}  // namespace

RunOutcome run_command(const RunArguments& arguments, std::ostream& out, std::ostream& err) {
  if (!arguments.resume.empty()) return resume_run(arguments, out, err);
  if (arguments.config_path.empty()) {
    throw InputError({"command line", 0}, "CONFIG", "a config file (or --resume RUN_DIR)", "none");
  }
  const Config config = load_config(arguments.config_path, arguments.overrides);
  const auto directory =
      prepare_output_directory(config, "", arguments.out, arguments.overwrite, kSummaryFile);
  std::filesystem::remove(directory / kCheckpointFile);  // a stale one from an overwritten run
  RunSettings settings;
  settings.terminal = arguments.terminal;
  settings.overrides = arguments.overrides;
  return run_experiment(config, directory, settings, out, err);
}

}  // namespace ncflab
