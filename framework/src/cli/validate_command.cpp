// `ncflab validate CONFIG [overrides] [--print-config]`: the config and its data checked
// and the problem described (degrees, scales), with nothing trained.
#include <fmt/format.h>

#include <ostream>

#include "ncflab/cli/cli.h"
#include "ncflab/cli/commands.h"
#include "ncflab/experiment/config.h"
#include "ncflab/experiment/problem.h"

namespace ncflab {

int validate_command(const CommandArguments& arguments, const ValidateOptions& options,
                     std::ostream& out) {
  const Config config = load_config(arguments.config_path, arguments.overrides);
  const Problem problem = build_problem(config);
  out << fmt::format("{}: valid\n", arguments.config_path) << describe_problem(problem);
  if (options.print_config) out << "\n# resolved config\n" << config_to_yaml(config);
  if (options.print_keys) {
    out << "\n# keys\n";
    for (const auto& [key, type] : config_keys()) out << fmt::format("{}: {}\n", key, type);
  }
  return kExitSuccess;
}

}  // namespace ncflab
