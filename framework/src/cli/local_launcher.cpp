// `ncflab sweep --launcher local --jobs J`: the plan's tasks as J processes at a time, the
// same task code SLURM runs, so a sweep tried on a workstation behaves as on the cluster.
#include <fmt/format.h>
#include <sys/types.h>

#include <csignal>
#include <deque>
#include <map>
#include <ostream>

#include "ncflab/core/process.h"
#include "ncflab/core/signals.h"
#include "sweep_launchers.h"

namespace ncflab {

int launch_local(const std::filesystem::path& root, const std::vector<size_t>& tasks, size_t jobs,
                 std::ostream& out, std::ostream& err) {
  const auto executable = ncflab_executable().string();
  const auto logs = root / "logs";
  std::filesystem::create_directories(logs);
  std::deque<size_t> waiting(tasks.begin(), tasks.end());
  std::map<pid_t, size_t> running;  // process → task
  size_t done = 0;
  size_t failed = 0;
  const auto progress = [&] {
    err << fmt::format("sweep: tasks {} waiting, {} running, {} done, {} failed\n", waiting.size(),
                       running.size(), done, failed)
        << std::flush;
  };
  out << fmt::format("sweep: {} task{} as up to {} processes (logs in {})\n", tasks.size(),
                     tasks.size() == 1 ? "" : "s", jobs, logs.string())
      << std::flush;
  InterruptHandler interrupts;
  int signal = 0;
  while (!waiting.empty() || !running.empty()) {
    while (signal == 0 && running.size() < jobs && !waiting.empty()) {
      const size_t task = waiting.front();
      waiting.pop_front();
      const pid_t pid =
          start_process({executable, "sweep", "--task", std::to_string(task), root.string()},
                        logs / fmt::format("task_{}.log", task));
      running.emplace(pid, task);
    }
    const auto [pid, code] = wait_for_process(0.2);
    if (pid > 0 && running.count(pid) != 0) {
      running.erase(pid);
      (code == 0 ? done : failed) += 1;
      progress();
    }
    if (signal == 0 && interrupt_signal() != 0) {
      // Stop the tasks as the cluster would: SIGTERM, and each checkpoints its batch.
      signal = interrupt_signal();
      waiting.clear();
      for (const auto& [child, task] : running) kill(child, SIGTERM);
      err << fmt::format("sweep: interrupted; stopping {} running task{}\n", running.size(),
                         running.size() == 1 ? "" : "s")
          << std::flush;
    }
  }
  return signal;
}

}  // namespace ncflab
