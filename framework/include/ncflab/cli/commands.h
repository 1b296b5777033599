// The work behind each ncflab command, as library calls: the CLI only parses
// arguments and maps exceptions to exit codes, and tests call these directly.
#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <string>
#include <vector>

#include "ncflab/experiment/run.h"

namespace ncflab {

/// What every config-driven command takes.
struct CommandArguments {
  std::string config_path;
  std::vector<std::string> overrides;  ///< "key.path=value"
  std::string out;                     ///< output directory; empty: runs/<name>/<kind>_<time>/
  bool overwrite = false;              ///< replace results already in `out`
};

/// What `ncflab validate` prints besides the problem.
struct ValidateOptions {
  bool print_config = false;  ///< the resolved config as YAML, after "# resolved config"
  bool print_keys = false;    ///< every key and its kind of value, after "# keys"
};

/// `ncflab validate`: loads the config and its data, builds the problem and prints what
/// it is. Returns exit code 0; bad input throws InputError.
int validate_command(const CommandArguments& arguments, const ValidateOptions& options,
                     std::ostream& out);

/// `ncflab kkt`: searches KKT points of the constrained NCF, writes kkt.json and
/// kkt_points.pt ({"W1": [M, k_1, d], …} for the M points, highest N first) and prints a
/// table to `out`; progress goes to `err`. Returns the output directory.
std::filesystem::path kkt_command(const CommandArguments& arguments, std::ostream& out,
                                  std::ostream& err);

/// `ncflab flow`: integrates the NCF gradient flow du/dt = ∇N(u) from each member's unit
/// initial direction w0, writes flow.json (T*, collapse, final N and residual; per member
/// under "members"), flow_trajectory.csv (member, time, norm, ncf, residual) and
/// flow_direction.pt (the final direction û per layer, [S, k_l, k_{l−1}]), and prints a
/// table to `out`; progress goes to `err`. Returns the output directory.
std::filesystem::path flow_command(const CommandArguments& arguments, std::ostream& out,
                                   std::ostream& err);

/// `ncflab run`: the CommandArguments, plus --resume and whether stderr is a terminal.
struct RunArguments : CommandArguments {
  std::string resume;     ///< run directory to continue (then no config or overrides)
  bool force = false;     ///< resume although the config or data changed since the start
  bool terminal = false;  ///< redraw the progress line in place
};

/// `ncflab run CONFIG [overrides] [--out DIR] [--overwrite]` or `ncflab run --resume DIR`:
/// trains and writes the run directory (SPEC §5). Returns the outcome (status, signal).
RunOutcome run_command(const RunArguments& arguments, std::ostream& out, std::ostream& err);

/// `ncflab sweep`: the grid (CommandArguments: CONFIG, key=v1,v2 ..., --out), how its tasks
/// run, or a sweep directory to continue, collect, or run one task of.
struct SweepArguments : CommandArguments {
  bool sequential = false;          ///< one run per batch (no ensembles)
  std::string launcher;             ///< "" (this process), "local" or "slurm"
  int64_t jobs = 0;                 ///< --launcher local: processes at once (0: cores)
  int64_t tasks = 0;                ///< shares of the plan (0: a batch each, at most 1000)
  std::vector<std::string> sbatch;  ///< --launcher slurm: more sbatch options
  bool wait = true;                 ///< --launcher slurm: until every task has ended
  double poll_seconds = 5;          ///< --launcher slurm: between two looks at squeue
  std::string resume;               ///< a sweep directory to continue
  std::string collect;              ///< a sweep directory to write sweep.csv of
  int64_t task = -1;                ///< run this task of the sweep directory `config_path`
};

/// What a sweep command left: its directory, the signal that interrupted it (0 if none)
/// and whether every point of the grid has finished (false too when not waited for).
struct SweepOutcome {
  std::filesystem::path directory;
  int signal = 0;
  bool complete = false;
};

/// `ncflab sweep CONFIG key=v1,v2 key2=range(a,b,step) ... [--out DIR]`: plans the grid
/// into DIR (plan.json and one run directory per point), runs it here, as local processes
/// or as a SLURM job array, and writes DIR/sweep.csv (one row per run: the swept values
/// and the main summary fields). Runs that differ only in δ (and seed, for CSV data) train
/// as one batched ensemble unless `sequential`. `--resume DIR` runs only what has not
/// finished, `--collect DIR` writes sweep.csv of what has, `--task I DIR` is one task.
SweepOutcome sweep_command(const SweepArguments& arguments, std::ostream& out, std::ostream& err);

/// `ncflab report DIR [--python PATH]`: the directory to report on and the interpreter.
struct ReportArguments {
  std::string directory;  ///< a run, sweep, kkt or flow directory
  std::string python;     ///< empty: $NCFLAB_PYTHON, else /usr/bin/python3, else python3
};

/// `ncflab report`: runs experiments/report/report.py on the directory, which writes PNG
/// figures and report.md into DIR/report/; its output goes to `out` and `err`. Returns
/// the script's exit code: 0 done, 2 not a directory ncflab wrote, 1 failure (e.g. no
/// matplotlib). Throws InputError when the interpreter the user named cannot run.
int report_command(const ReportArguments& arguments, std::ostream& out, std::ostream& err);

}  // namespace ncflab
