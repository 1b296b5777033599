// `ncflab sweep --launcher slurm`: the plan's tasks as one SLURM job array. The job's
// script is written into the sweep directory (so it can be read, or resubmitted by hand),
// sbatch submits it, and squeue tells which tasks are still queued or running; whether a
// task that left the queue succeeded is read off its points' summaries, the one source of
// truth whatever happened to the job (cancelled, requeued, timed out).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <ostream>
#include <sstream>
#include <thread>

#include "ncflab/core/errors.h"
#include "ncflab/core/files.h"
#include "ncflab/core/process.h"
#include "ncflab/core/signals.h"
#include "sweep_launchers.h"

namespace ncflab {
namespace {

std::string array_spec(const std::vector<size_t>& tasks) {
  std::string spec;
  for (size_t i = 0; i < tasks.size();) {
    size_t j = i;
    while (j + 1 < tasks.size() && tasks[j + 1] == tasks[j] + 1) ++j;
    spec += (spec.empty() ? "" : ",") +
            (j == i ? fmt::format("{}", tasks[i]) : fmt::format("{}-{}", tasks[i], tasks[j]));
    i = j + 1;
  }
  return spec;
}

std::string job_script(const std::filesystem::path& root, const std::vector<size_t>& tasks,
                       const std::vector<std::string>& options) {
  std::string script = fmt::format(
      "#!/bin/bash\n"
      "# Written by ncflab sweep: one array task per share of {plan}; task I runs\n"
      "# `ncflab sweep --task I DIR`, which skips what has finished and continues what was\n"
      "# interrupted, so a requeued or resubmitted task never redoes finished work.\n"
      "#SBATCH --job-name=ncflab_{name}\n"
      "#SBATCH --array={array}\n"
      "#SBATCH --output={logs}/task_%a.log\n"
      "#SBATCH --open-mode=append\n"
      "#SBATCH --requeue\n",
      fmt::arg("plan", (root / kSweepPlanFile).string()),
      fmt::arg("name", root.filename().string()), fmt::arg("array", array_spec(tasks)),
      fmt::arg("logs", (root / "slurm").string()));
  for (const auto& option : options) script += "#SBATCH " + option + "\n";
  script += fmt::format(
      "# As many threads as CPUs SLURM gave the task: more would spin against the node's\n"
      "# other tasks.\n"
      "export OMP_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-1}}\"\n"
      "exec {} sweep --task \"$SLURM_ARRAY_TASK_ID\" {}\n",
      shell_quote(ncflab_executable().string()), shell_quote(root.string()));
  return script;
}

// "12345" or "12345;cluster" → "12345".
std::string job_id_of(const std::string& parsable) {
  std::string id = parsable.substr(0, parsable.find_first_of(";\n"));
  if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos) return "";
  return id;
}

std::string first_line(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  return line.empty() ? "(no message)" : line;
}

// Array task → SLURM state, for the tasks of `job` still queued or running.
std::map<size_t, std::string> queued_tasks(const std::string& job, bool& ok, std::string& error) {
  std::map<size_t, std::string> states;
  const auto result =
      run_process({"squeue", "--noheader", "--array", "--jobs=" + job, "--format=%K %T"});
  ok = result.exit_code == 0;
  if (!ok) {
    error = first_line(result.err);
    // A job the controller has already forgotten: all of its tasks are over.
    if (result.err.find("Invalid job id") != std::string::npos) ok = true;
    return states;
  }
  std::istringstream lines(result.out);
  std::string task;
  std::string state;
  while (lines >> task >> state) {
    // A still-unsplit pending array shows as "0-5" or "[0-5%2]": every task in it waits.
    std::string range = task;
    range.erase(
        std::remove_if(range.begin(), range.end(), [](char c) { return c == '[' || c == ']'; }),
        range.end());
    range = range.substr(0, range.find('%'));
    std::istringstream parts(range);
    for (std::string part; std::getline(parts, part, ',');) {
      const auto dash = part.find('-');
      try {
        const size_t first = std::stoul(part.substr(0, dash));
        const size_t last = dash == std::string::npos ? first : std::stoul(part.substr(dash + 1));
        for (size_t t = first; t <= last; ++t) states[t] = state;
      } catch (const std::exception&) {
      }
    }
  }
  return states;
}

bool is_pending(const std::string& state) {
  return state == "PENDING" || state == "REQUEUED" || state == "REQUEUE_HOLD" ||
         state == "REQUEUE_FED" || state == "CONFIGURING" || state == "RESV_DEL_HOLD";
}

}  // namespace

int launch_slurm(const std::filesystem::path& root, const SweepManifest& manifest,
                 const std::vector<size_t>& tasks, const SlurmLaunch& launch, std::ostream& out,
                 std::ostream& err) {
  const auto directory = root / "slurm";
  std::filesystem::create_directories(directory);
  const auto script = directory / "sweep.sbatch";
  write_file_atomically(script, job_script(root, tasks, launch.options));
  const auto submitted = run_process({"sbatch", "--parsable", script.string()});
  const std::string job = job_id_of(submitted.out);
  if (submitted.exit_code != 0 || job.empty()) {
    const std::string why =
        submitted.exit_code == 127 ? "sbatch is not on PATH" : first_line(submitted.err);
    throw InputError({script.string(), 0}, "sbatch", "a job SLURM accepts",
                     fmt::format("'{}'", why));
  }
  write_file_atomically(directory / "job_id", job + "\n");
  out << fmt::format("sweep: submitted SLURM job {} ({} task{}; script {})\n", job, tasks.size(),
                     tasks.size() == 1 ? "" : "s", script.string())
      << std::flush;
  if (!launch.wait) {
    out << fmt::format(
        "sweep: not waiting; `ncflab sweep --collect {}` writes sweep.csv from "
        "what has finished\n",
        root.string());
    return 0;
  }
  InterruptHandler interrupts;
  std::string last_line;
  int failed_looks = 0;
  // Whether a task that left the queue finished, read off its summaries once (a requeued
  // task comes back to the queue and is read again when it leaves).
  std::map<size_t, bool> ended;
  while (true) {
    bool ok = false;
    std::string error;
    const auto queued = queued_tasks(job, ok, error);
    if (!ok) {
      // The controller may be briefly unreachable (a restart, a busy moment): keep looking.
      if (++failed_looks == 20) {
        throw std::runtime_error(fmt::format("squeue failed 20 times in a row: {}", error));
      }
    } else {
      failed_looks = 0;
      size_t pending = 0, running = 0, done = 0, failed = 0;
      for (size_t task : tasks) {
        const auto it = queued.find(task);
        if (it != queued.end()) {
          ended.erase(task);
          (is_pending(it->second) ? pending : running) += 1;
          continue;
        }
        const auto [entry, first_look] = ended.emplace(task, false);
        if (first_look) entry->second = task_finished(root, manifest, task);
        (entry->second ? done : failed) += 1;
      }
      const std::string line =
          fmt::format("sweep: job {}: tasks {} pending, {} running, {} done, {} failed", job,
                      pending, running, done, failed);
      if (line != last_line) err << line << "\n" << std::flush;
      last_line = line;
      if (pending + running == 0) return 0;
    }
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::duration<double>(launch.poll_seconds);
    while (std::chrono::steady_clock::now() < deadline) {
      if (interrupt_signal() != 0) {
        err << fmt::format(
                   "sweep: stopped waiting; job {} keeps running (scancel {} stops it; "
                   "`ncflab sweep --collect {}` collects it)\n",
                   job, job, root.string())
            << std::flush;
        return interrupt_signal();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

}  // namespace ncflab
