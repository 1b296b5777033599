// The ncflab command line as a library call, so tests run every command exactly
// as a user would and check its exit code and messages.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace ncflab {

/// Exit codes (SPEC §3).
enum ExitCode : int { kExitSuccess = 0, kExitRuntimeFailure = 1, kExitBadInput = 2 };

/// Runs `ncflab args...` (args[0] is the program name). Results go to `out`; errors,
/// warnings and progress to `err`. Returns the exit code; never throws.
int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

/// "ncflab 0.1.0 (LibTorch 1.13.0, CPU)".
std::string version_line();

}  // namespace ncflab
