// The work behind each ncflab command, as library calls: the CLI only parses
// arguments and maps exceptions to exit codes, and tests call these directly.
#pragma once

#include <filesystem>
#include <iosfwd>
#include <string>
#include <vector>

namespace ncflab {

/// What every config-driven command takes.
struct CommandArguments {
  std::string config_path;
  std::vector<std::string> overrides;  ///< "key.path=value"
  std::string out;                     ///< output directory; empty: runs/<name>/<kind>_<time>/
  bool overwrite = false;              ///< replace results already in `out`
};

/// `ncflab kkt`: searches KKT points of the constrained NCF, writes kkt.json and
/// kkt_points.pt ({"W1": [M, k_1, d], …} for the M points, highest N first) and prints a
/// table to `out`; progress goes to `err`. Returns the output directory.
std::filesystem::path kkt_command(const CommandArguments& arguments, std::ostream& out,
                                  std::ostream& err);

}  // namespace ncflab
