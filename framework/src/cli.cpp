// Command-line parsing (CLI11) and the mapping of failures to exit codes:
// bad input → 2 with one line, anything else → 1.
#include "ncflab/cli.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <torch/torch.h>
#include <torch/version.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <ostream>

#include "ncflab/commands.h"
#include "ncflab/config.h"
#include "ncflab/errors.h"
#include "ncflab/log.h"
#include "ncflab/problem.h"
#include "ncflab/version.h"

namespace ncflab {
namespace {

/// Routes the log sink to the command's error stream while the command runs.
class ScopedLogToStream {
 public:
  explicit ScopedLogToStream(std::ostream& err)
      : previous_(set_log_sink([&err](LogLevel level, std::string_view message) {
          const char* prefix = level == LogLevel::warning ? "ncflab: warning: "
                               : level == LogLevel::error ? "ncflab: error: "
                                                          : "";
          err << prefix << message << '\n' << std::flush;
        })) {}
  ~ScopedLogToStream() { set_log_sink(std::move(previous_)); }
  ScopedLogToStream(const ScopedLogToStream&) = delete;
  ScopedLogToStream& operator=(const ScopedLogToStream&) = delete;

 private:
  LogSink previous_;
};

void add_config_arguments(CLI::App& command, CommandArguments& arguments) {
  command.add_option("config", arguments.config_path, "YAML config file")->required();
  command.add_option("overrides", arguments.overrides,
                     "key.path=value overrides, e.g. train.step=1e-3 model.widths=[12,12]");
}

void add_output_arguments(CLI::App& command, CommandArguments& arguments) {
  command.add_option("--out", arguments.out,
                     "Output directory (default: runs/<name>/<command>_<date_time>/)");
  command.add_flag("--overwrite", arguments.overwrite, "Replace results already in --out");
}

int validate(const CommandArguments& arguments, bool print_config, std::ostream& out) {
  const Config config = load_config(arguments.config_path, arguments.overrides);
  const Problem problem = build_problem(config);
  out << fmt::format("{}: valid\n", arguments.config_path) << describe_problem(problem);
  if (print_config) out << "\n# resolved config\n" << config_to_yaml(config);
  return kExitSuccess;
}

}  // namespace

std::string version_line() {
  return fmt::format("ncflab {} (LibTorch {}, {})", NCFLAB_VERSION, TORCH_VERSION,
                     torch::cuda::is_available() ? "CUDA available" : "CPU");
}

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  ScopedLogToStream log_to_err(err);
  CLI::App app("ncflab: training dynamics of homogeneous networks from small initializations",
               "ncflab");
  app.set_version_flag("--version", version_line());
  app.require_subcommand(1);

  CommandArguments validate_arguments;
  bool print_config = false;
  CLI::App* validate_command =
      app.add_subcommand("validate", "Check a config and its data, print the model's degrees; run nothing");
  add_config_arguments(*validate_command, validate_arguments);
  validate_command->add_flag("--print-config", print_config,
                             "Also print the resolved config (defaults filled in) as YAML");

  CommandArguments kkt_arguments;
  CLI::App* kkt =
      app.add_subcommand("kkt", "Search KKT points of the constrained NCF; write kkt.json");
  add_config_arguments(*kkt, kkt_arguments);
  add_output_arguments(*kkt, kkt_arguments);

  CommandArguments flow_arguments;
  CLI::App* flow = app.add_subcommand(
      "flow", "Integrate the NCF gradient flow from w0; write T* and the blow-up direction");
  add_config_arguments(*flow, flow_arguments);
  add_output_arguments(*flow, flow_arguments);

  RunArguments run_arguments;
  CLI::App* run = app.add_subcommand(
      "run", "Train from delta*w0 by gradient descent; write the run directory (or --resume one)");
  run->add_option("config", run_arguments.config_path, "YAML config file (not with --resume)");
  run->add_option("overrides", run_arguments.overrides,
                  "key.path=value overrides, e.g. train.step=1e-3 model.widths=[12,12]");
  add_output_arguments(*run, run_arguments);
  run->add_option("--resume", run_arguments.resume,
                  "Continue the interrupted run in RUN_DIR from its checkpoint");

  CommandArguments sweep_arguments;
  CLI::App* sweep = app.add_subcommand(
      "sweep", "Run a grid: key=v1,v2 or key=range(a,b,step); one run each plus sweep.csv");
  add_config_arguments(*sweep, sweep_arguments);
  add_output_arguments(*sweep, sweep_arguments);
  bool sequential = false;
  sweep->add_flag("--sequential", sequential,
                  "One run at a time (default: runs differing only in init.scale train as one ensemble)");

  ReportArguments report_arguments;
  CLI::App* report = app.add_subcommand(
      "report", "Draw figures and report.md of a run, sweep, kkt or flow directory into DIR/report/");
  report->add_option("directory", report_arguments.directory, "RUN_DIR, SWEEP_DIR, KKT_DIR or FLOW_DIR")
      ->required();
  report->add_option("--python", report_arguments.python,
                     "Python with matplotlib (default: $NCFLAB_PYTHON, else /usr/bin/python3)");

  // CLI11 would call an unknown command "a missing subcommand"; name it instead.
  const std::vector<const CLI::App*> commands{validate_command, run, sweep, kkt, flow, report};
  const auto is_command = [&](const std::string& name) {
    return std::any_of(commands.begin(), commands.end(),
                       [&](const CLI::App* command) { return command->get_name() == name; });
  };
  if (args.size() > 1 && !args[1].empty() && args[1][0] != '-' && !is_command(args[1])) {
    std::string names;
    for (const CLI::App* command : commands) names += (names.empty() ? "" : ", ") + command->get_name();
    err << fmt::format("ncflab: unknown command '{}' (commands: {}; see ncflab --help)\n", args[1],
                       names);
    return kExitBadInput;
  }

  std::vector<const char*> argv;
  for (const auto& arg : args) argv.push_back(arg.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::Success& e) {
    return app.exit(e, out, err);
  } catch (const CLI::ParseError& e) {
    err << "ncflab: " << e.what() << " (see ncflab --help)\n";
    return kExitBadInput;
  }

  try {
    if (validate_command->parsed()) return validate(validate_arguments, print_config, out);
    if (kkt->parsed()) {
      kkt_command(kkt_arguments, out, err);
      return kExitSuccess;
    }
    if (run->parsed()) {
      run_arguments.terminal = &err == &std::cerr && isatty(STDERR_FILENO) != 0;
      const auto outcome = run_command(run_arguments, out, err);
      // Interrupted: 128 + signal, as a shell reports a process killed by it (130, 143).
      return outcome.signal != 0 ? 128 + outcome.signal : kExitSuccess;
    }
    if (sweep->parsed()) {
      const auto outcome = sweep_command(sweep_arguments, sequential, out, err);
      return outcome.signal != 0 ? 128 + outcome.signal : kExitSuccess;
    }
    if (flow->parsed()) {
      flow_command(flow_arguments, out, err);
      return kExitSuccess;
    }
    if (report->parsed()) return report_command(report_arguments, out, err);
    err << "ncflab: no command given (see ncflab --help)\n";
    return kExitBadInput;
  } catch (const InputError& e) {
    err << "ncflab: error: " << e.what() << '\n';
    return kExitBadInput;
  } catch (const std::exception& e) {
    err << "ncflab: failed: " << e.what() << '\n';
    return kExitRuntimeFailure;
  }
}

}  // namespace ncflab
