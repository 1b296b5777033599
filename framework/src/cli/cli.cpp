// Command-line parsing (CLI11) and the mapping of failures to exit codes:
// bad input → 2 with one line, anything else → 1.
#include "ncflab/cli/cli.h"

#include <fmt/format.h>
#include <torch/torch.h>
#include <torch/version.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>
#include <ostream>

#include "ncflab/cli/commands.h"
#include "ncflab/core/cpu_isa.h"
#include "ncflab/core/errors.h"
#include "ncflab/core/log.h"
#include "ncflab/core/signals.h"
#include "ncflab/core/version.h"

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

/// The parser: every subcommand with the arguments it fills.
struct Commands {
  CLI::App app{"ncflab: training dynamics of homogeneous networks from small initializations",
               "ncflab"};
  CommandArguments validate_arguments;
  ValidateOptions validate_options;
  CommandArguments kkt_arguments;
  CommandArguments flow_arguments;
  RunArguments run_arguments;
  SweepArguments sweep_arguments;
  ReportArguments report_arguments;
  CLI::App* validate = nullptr;
  CLI::App* kkt = nullptr;
  CLI::App* flow = nullptr;
  CLI::App* run = nullptr;
  CLI::App* sweep = nullptr;
  CLI::App* report = nullptr;

  Commands();
  Commands(const Commands&) = delete;
  Commands& operator=(const Commands&) = delete;

  std::vector<const CLI::App*> all() const { return {validate, run, sweep, kkt, flow, report}; }
};

Commands::Commands() {
  app.set_version_flag("--version", version_line());
  app.require_subcommand(1);
  validate = app.add_subcommand(
      "validate", "Check a config and its data, print the model's degrees; run nothing");
  add_config_arguments(*validate, validate_arguments);
  validate->add_flag("--print-config", validate_options.print_config,
                     "Also print the resolved config (defaults filled in) as YAML");
  validate->add_flag("--print-keys", validate_options.print_keys,
                     "Also print every config key and the kind of value it takes");

  kkt = app.add_subcommand("kkt", "Search KKT points of the constrained NCF; write kkt.json");
  add_config_arguments(*kkt, kkt_arguments);
  add_output_arguments(*kkt, kkt_arguments);

  flow = app.add_subcommand(
      "flow", "Integrate the NCF gradient flow from w0; write T* and the blow-up direction");
  add_config_arguments(*flow, flow_arguments);
  add_output_arguments(*flow, flow_arguments);

  run = app.add_subcommand(
      "run", "Train from delta*w0 by gradient descent; write the run directory (or --resume one)");
  run->add_option("config", run_arguments.config_path, "YAML config file (not with --resume)");
  run->add_option("overrides", run_arguments.overrides,
                  "key.path=value overrides, e.g. train.step=1e-3 model.widths=[12,12]");
  add_output_arguments(*run, run_arguments);
  run->add_option("--resume", run_arguments.resume,
                  "Continue the interrupted run in RUN_DIR from its checkpoint");
  run->add_flag("--force", run_arguments.force,
                "With --resume: continue although config.yaml or the data changed since the "
                "run started");

  sweep = app.add_subcommand(
      "sweep", "Run a grid: key=v1,v2 or key=range(a,b,step); one run each plus sweep.csv");
  sweep->add_option("config", sweep_arguments.config_path,
                    "YAML config file (with --task: the sweep directory)");
  sweep->add_option("overrides", sweep_arguments.overrides,
                    "key=v1,v2 or key=range(a,b,step) axes and key=value overrides");
  add_output_arguments(*sweep, sweep_arguments);
  sweep->add_flag(
      "--sequential", sweep_arguments.sequential,
      "One run at a time (default: runs differing only in init.scale train as one ensemble)");
  sweep->add_option("--launcher", sweep_arguments.launcher,
                    "Run the tasks as processes here (local) or as a SLURM job array (slurm); "
                    "default: one after another in this process");
  sweep->add_option("--jobs", sweep_arguments.jobs,
                    "--launcher local: tasks at once (default: the number of cores)");
  sweep->add_option("--tasks", sweep_arguments.tasks,
                    "Split the plan into this many tasks (default: one per batch, at most 1000 "
                    "for SLURM)");
  sweep->add_option("--sbatch", sweep_arguments.sbatch,
                    "--launcher slurm: an sbatch option, e.g. --sbatch=--partition=gpu "
                    "(repeat for more)");
  sweep->add_flag("!--no-wait", sweep_arguments.wait,
                  "--launcher slurm: return once submitted (collect later with --collect)");
  sweep->add_option("--poll", sweep_arguments.poll_seconds,
                    "--launcher slurm: seconds between two looks at squeue (default 5)");
  sweep->add_option("--resume", sweep_arguments.resume,
                    "Run what has not finished in SWEEP_DIR (with any launcher)");
  sweep->add_option("--collect", sweep_arguments.collect,
                    "Write SWEEP_DIR/sweep.csv from the runs that have finished; list the rest");
  sweep->add_option("--task", sweep_arguments.task,
                    "Run task I of the planned sweep directory given instead of CONFIG (what "
                    "each launched task runs)");

  report = app.add_subcommand(
      "report",
      "Draw figures and report.md of a run, sweep, kkt or flow directory into DIR/report/");
  report
      ->add_option("directory", report_arguments.directory,
                   "RUN_DIR, SWEEP_DIR, KKT_DIR or FLOW_DIR")
      ->required();
  report->add_option("--python", report_arguments.python,
                     "Python with matplotlib (default: $NCFLAB_PYTHON, else /usr/bin/python3)");
}

// A failure is one line on the console, whatever the exception carried.
std::string console_line(const std::string& message) {
  const auto end = message.find('\n');
  return end == std::string::npos ? message : message.substr(0, end);
}

// CLI11 would call an unknown command "a missing subcommand"; name it instead.
bool reject_unknown_command(const Commands& commands, const std::vector<std::string>& args,
                            std::ostream& err) {
  const auto all = commands.all();
  const auto is_command = [&](const std::string& name) {
    return std::any_of(all.begin(), all.end(),
                       [&](const CLI::App* command) { return command->get_name() == name; });
  };
  if (args.size() < 2 || args[1].empty() || args[1][0] == '-' || is_command(args[1])) return false;
  std::string names;
  for (const CLI::App* command : all) names += (names.empty() ? "" : ", ") + command->get_name();
  err << fmt::format("ncflab: unknown command '{}' (commands: {}; see ncflab --help)\n", args[1],
                     names);
  return true;
}

// Runs the parsed command; an interrupted run or sweep exits as a shell reports a
// process killed by the signal (128 + signal: 130, 143).
int dispatch(Commands& c, std::ostream& out, std::ostream& err) {
  if (c.validate->parsed()) return validate_command(c.validate_arguments, c.validate_options, out);
  if (c.kkt->parsed()) {
    kkt_command(c.kkt_arguments, out, err);
    return kExitSuccess;
  }
  if (c.run->parsed()) {
    c.run_arguments.terminal = &err == &std::cerr && isatty(STDERR_FILENO) != 0;
    const auto outcome = run_command(c.run_arguments, out, err);
    return outcome.signal != 0 ? 128 + outcome.signal : kExitSuccess;
  }
  if (c.sweep->parsed()) {
    const auto outcome = sweep_command(c.sweep_arguments, out, err);
    if (outcome.signal != 0) return 128 + outcome.signal;
    // Not every point finished (a run failed, a task died): the sweep is not done.
    return outcome.complete || !c.sweep_arguments.wait ? kExitSuccess : kExitRuntimeFailure;
  }
  if (c.flow->parsed()) {
    flow_command(c.flow_arguments, out, err);
    return kExitSuccess;
  }
  if (c.report->parsed()) return report_command(c.report_arguments, out, err);
  err << "ncflab: no command given (see ncflab --help)\n";
  return kExitBadInput;
}

}  // namespace

std::string version_line() {
  return fmt::format("ncflab {} (LibTorch {}, {}; CPU kernels {})", NCFLAB_VERSION, TORCH_VERSION,
                     torch::cuda::is_available() ? "CUDA available" : "CPU", cpu_isa_summary());
}

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  ScopedLogToStream log_to_err(err);
  Commands commands;
  if (reject_unknown_command(commands, args, err)) return kExitBadInput;
  std::vector<const char*> argv;
  for (const auto& arg : args) argv.push_back(arg.c_str());
  try {
    commands.app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::Success& e) {
    return commands.app.exit(e, out, err);
  } catch (const CLI::ParseError& e) {
    err << "ncflab: " << e.what() << " (see ncflab --help)\n";
    return kExitBadInput;
  }
  try {
    // SIGINT/SIGTERM become a flag for the whole command: long loops stop between steps
    // (Interrupted, or a run's checkpoint) instead of dying mid-write.
    const InterruptHandler interrupts;
    return dispatch(commands, out, err);
  } catch (const Interrupted& e) {
    err << "ncflab: " << e.what() << '\n';
    return 128 + e.signal();
  } catch (const InputError& e) {
    err << "ncflab: error: " << e.what() << '\n';
    return kExitBadInput;
  } catch (const c10::Error& e) {
    // LibTorch appends a C++ backtrace to what(): its message is the first line.
    err << "ncflab: failed: " << console_line(e.what_without_backtrace()) << '\n';
    return kExitRuntimeFailure;
  } catch (const std::exception& e) {
    err << "ncflab: failed: " << console_line(e.what()) << '\n';
    return kExitRuntimeFailure;
  }
}

}  // namespace ncflab
