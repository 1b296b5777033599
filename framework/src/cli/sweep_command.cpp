// `ncflab sweep`: a grid planned into its directory (plan.json, one run directory per
// point), its tasks run by a launcher (this process, local processes or a SLURM job array),
// and sweep.csv collected from the points' summaries. --resume, --collect and --task work on
// a planned directory, so a sweep survives whatever stops it.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <ostream>
#include <string>
#include <thread>

#include "ncflab/cli/commands.h"
#include "ncflab/core/errors.h"
#include "ncflab/experiment/run_directory.h"
#include "ncflab/experiment/sweep_directory.h"
#include "ncflab/experiment/sweep_task.h"
#include "sweep_launchers.h"

namespace ncflab {
namespace {

// SLURM's default MaxArraySize is 1001: indices 0…1000.
constexpr size_t kMaxSlurmTasks = 1000;

const SourceLocation kCommandLine{"command line", 0};

// A new sweep's directory: never one that already holds a sweep, unless --overwrite.
OutputDirectory prepare_sweep_directory(const SweepArguments& arguments, const Config& config,
                                        std::ostream& err) {
  if (!arguments.out.empty() && !arguments.overwrite &&
      std::filesystem::exists(std::filesystem::path(arguments.out) / kSweepPlanFile)) {
    throw InputError(kCommandLine, "--out", "a directory without a sweep (or --overwrite)",
                     fmt::format("'{}' holds one; `ncflab sweep --resume {}` continues it",
                                 arguments.out, arguments.out));
  }
  return prepare_output_directory(config, OutputKind::sweep, arguments.out, arguments.overwrite,
                                  err);
}

// A line a second while planning a large grid (every point is parsed and checked, then its
// directory written): "sweep: planning: N of M <what>", and the last count when it took a
// second or more.
std::function<void(size_t, size_t)> planning_lines(std::ostream& err, std::string what) {
  const auto started = std::chrono::steady_clock::now();
  return [&err, what = std::move(what), started, next_line = started + std::chrono::seconds(1)](
             size_t done, size_t total) mutable {
    const auto now = std::chrono::steady_clock::now();
    if (now < next_line && done < total) return;
    if (now >= next_line || now - started >= std::chrono::seconds(1)) {
      err << fmt::format("sweep: planning: {} of {} {}\n", done, total, what);
    }
    next_line = now + std::chrono::seconds(1);
  };
}

// Every task in this process, one after another; sweep.csv rewritten after each batch,
// from the rows read at the start and those of the batch that just ran.
int run_here(const std::filesystem::path& root, const SweepManifest& manifest,
             const std::vector<size_t>& tasks, std::ostream& out, std::ostream& err) {
  std::vector<std::string> rows(manifest.points.size());
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = sweep_row(root, manifest, i);
  const auto update_rows = [&](size_t batch) {
    for (size_t i : manifest.batches[batch]) rows[i] = sweep_row(root, manifest, i);
    write_sweep_csv(root, manifest, rows);
  };
  for (size_t task : tasks) {
    const auto outcome = run_sweep_task(root, manifest, task, out, err, update_rows);
    if (outcome.signal != 0) {
      out << "sweep: interrupted; `ncflab sweep --resume " << root.string() << "` continues it\n";
      return outcome.signal;
    }
  }
  return 0;
}

// Runs `tasks` with the launcher the arguments name; returns the interrupting signal.
int launch(const std::filesystem::path& root, const SweepManifest& manifest,
           const std::vector<size_t>& tasks, const SweepArguments& arguments, std::ostream& out,
           std::ostream& err) {
  if (arguments.launcher.empty()) return run_here(root, manifest, tasks, out, err);
  if (arguments.launcher == "local") {
    const size_t cores = std::max(1u, std::thread::hardware_concurrency());
    const size_t jobs = arguments.jobs > 0 ? static_cast<size_t>(arguments.jobs) : cores;
    return launch_local(root, tasks, jobs, out, err);
  }
  SlurmLaunch slurm;
  // The config's launcher.slurm keys first: a later sbatch directive wins, so --sbatch can
  // change what the lab's config sets.
  const Config first = load_config((root / manifest.names.front() / kConfigFile).string());
  slurm.options = first.launcher.slurm.sbatch_options();
  slurm.options.insert(slurm.options.end(), arguments.sbatch.begin(), arguments.sbatch.end());
  slurm.wait = arguments.wait;
  slurm.poll_seconds = arguments.poll_seconds;
  return launch_slurm(root, manifest, tasks, slurm, out, err);
}

// sweep.csv from what has finished, and a word on what has not.
SweepOutcome finish(const std::filesystem::path& root, const SweepManifest& manifest, int signal,
                    std::ostream& out) {
  const auto collection = collect_sweep(root, manifest);
  out << fmt::format("sweep: wrote {} ({} of {} runs finished)\n", (root / kSweepCsvFile).string(),
                     manifest.points.size() - collection.unfinished.size(), manifest.points.size());
  if (!collection.unfinished.empty() && signal == 0) {
    std::string names;
    for (size_t k = 0; k < std::min<size_t>(collection.unfinished.size(), 5); ++k) {
      names += (k == 0 ? "" : ", ") + manifest.names[collection.unfinished[k]];
    }
    if (collection.unfinished.size() > 5) names += ", …";
    out << fmt::format("sweep: not finished: {}; `ncflab sweep --resume {}` runs them\n", names,
                       root.string());
  }
  return {root, signal, collection.unfinished.empty()};
}

std::vector<size_t> unfinished_tasks(const std::filesystem::path& root,
                                     const SweepManifest& manifest) {
  std::vector<size_t> tasks;
  for (size_t t = 0; t < manifest.tasks.size(); ++t) {
    if (!task_finished(root, manifest, t)) tasks.push_back(t);
  }
  return tasks;
}

void check_arguments(const SweepArguments& arguments) {
  const int modes = (arguments.resume.empty() ? 0 : 1) + (arguments.collect.empty() ? 0 : 1) +
                    (arguments.task >= 0 ? 1 : 0);
  if (modes > 1) {
    throw InputError(kCommandLine, "sweep", "one of --resume, --collect or --task",
                     "several of them");
  }
  if (modes == 1 && arguments.task < 0 &&
      (!arguments.config_path.empty() || !arguments.overrides.empty())) {
    throw InputError(kCommandLine, arguments.resume.empty() ? "--collect" : "--resume",
                     "a sweep directory only (its plan.json holds the grid)",
                     fmt::format("'{}'", arguments.config_path));
  }
  if (arguments.launcher != "" && arguments.launcher != "local" && arguments.launcher != "slurm") {
    throw InputError(kCommandLine, "--launcher", "local or slurm",
                     fmt::format("'{}'", arguments.launcher));
  }
  if (!arguments.sbatch.empty() && arguments.launcher != "slurm") {
    throw InputError(kCommandLine, "--sbatch", "--launcher slurm with it", "no SLURM launcher");
  }
  if (arguments.jobs != 0 && arguments.launcher != "local") {
    throw InputError(
        kCommandLine, "--jobs", "--launcher local with it",
        arguments.launcher.empty() ? "no launcher" : "--launcher " + arguments.launcher);
  }
  if (!arguments.wait && arguments.launcher != "slurm") {
    throw InputError(kCommandLine, "--no-wait", "--launcher slurm with it", "no SLURM launcher");
  }
}

}  // namespace

SweepOutcome sweep_command(const SweepArguments& arguments, std::ostream& out, std::ostream& err) {
  check_arguments(arguments);
  if (arguments.task >= 0) {
    // One task of a planned sweep (what a SLURM array task or a local process runs).
    const std::filesystem::path root = arguments.config_path;
    if (root.empty() || !arguments.overrides.empty()) {
      throw InputError(kCommandLine, "--task", "--task I SWEEP_DIR", "other arguments");
    }
    const auto manifest = read_sweep_plan(root);
    if (static_cast<size_t>(arguments.task) >= manifest.tasks.size()) {
      throw InputError(kCommandLine, "--task",
                       fmt::format("a task of the plan, 0 to {}", manifest.tasks.size() - 1),
                       fmt::format("{}", arguments.task));
    }
    const auto task = static_cast<size_t>(arguments.task);
    const auto outcome = run_sweep_task(root, manifest, task, out, err);
    return {root, outcome.signal, task_finished(root, manifest, task)};
  }
  if (!arguments.collect.empty()) {
    const std::filesystem::path root = arguments.collect;
    const auto manifest = read_sweep_plan(root);
    const auto lock = DirectoryLock::acquire(root);
    return finish(root, manifest, 0, out);
  }
  if (!arguments.resume.empty()) {
    const std::filesystem::path root = arguments.resume;
    const auto manifest = read_sweep_plan(root);
    const auto lock = DirectoryLock::acquire(root);
    const auto tasks = unfinished_tasks(root, manifest);
    out << fmt::format("sweep: resuming {}: {} of {} task{} not finished\n", root.string(),
                       tasks.size(), manifest.tasks.size(), manifest.tasks.size() == 1 ? "" : "s");
    const int signal = tasks.empty() ? 0 : launch(root, manifest, tasks, arguments, out, err);
    if (!arguments.wait) return {root, 0, false};
    return finish(root, manifest, signal, out);
  }
  if (arguments.config_path.empty()) {
    throw InputError(kCommandLine, "CONFIG",
                     "a config and key=v1,v2 ... (or --resume/--collect SWEEP_DIR)", "none");
  }
  const auto started = std::chrono::steady_clock::now();
  const SweepPlan plan = plan_sweep(arguments.config_path, arguments.overrides,
                                    arguments.sequential, planning_lines(err, "points checked"));
  const OutputDirectory output = prepare_sweep_directory(arguments, plan.configs.front(), err);
  const auto& root = output.path;
  size_t tasks = arguments.tasks > 0 ? static_cast<size_t>(arguments.tasks) : 0;
  if (arguments.launcher == "slurm" && (tasks == 0 || tasks > kMaxSlurmTasks)) {
    tasks = std::min(plan.batches.size(), kMaxSlurmTasks);
  }
  const auto manifest = write_sweep_plan(plan, arguments.config_path, arguments.overrides, tasks,
                                         root, planning_lines(err, "run directories written"));
  const std::chrono::duration<double> planned = std::chrono::steady_clock::now() - started;
  out << fmt::format("sweep: {} runs into {} ({} batch{}, {} task{}; planned in {:.2f} s)\n",
                     plan.points.size(), root.string(), plan.batches.size(),
                     plan.batches.size() == 1 ? "" : "es", manifest.tasks.size(),
                     manifest.tasks.size() == 1 ? "" : "s", planned.count());
  std::vector<size_t> all(manifest.tasks.size());
  for (size_t t = 0; t < all.size(); ++t) all[t] = t;
  const int signal = launch(root, manifest, all, arguments, out, err);
  if (!arguments.wait) return {root, 0, false};
  return finish(root, manifest, signal, out);
}

}  // namespace ncflab
