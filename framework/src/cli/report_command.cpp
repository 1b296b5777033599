// `ncflab report DIR`: figures and a Markdown summary of a run, sweep, kkt or flow
// directory. The plotting lives in experiments/report/report.py (matplotlib); this runs it.
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <ostream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "ncflab/cli/commands.h"
#include "ncflab/core/errors.h"

extern char** environ;

namespace ncflab {
namespace {

namespace fs = std::filesystem;

/// report.py: the source tree's (a compile-time path), else beside the executable.
fs::path find_report_script() {
  std::vector<fs::path> candidates{NCFLAB_REPORT_SCRIPT};
  std::error_code error;
  const auto executable = fs::read_symlink("/proc/self/exe", error);
  if (!error) candidates.push_back(executable.parent_path() / "../experiments/report/report.py");
  std::string looked;
  for (const auto& candidate : candidates) {
    if (fs::is_regular_file(candidate)) return candidate;
    looked += (looked.empty() ? "" : ", ") + candidate.lexically_normal().string();
  }
  throw std::runtime_error(fmt::format("report.py not found (looked at {})", looked));
}

/// The interpreter and where its name came from ("--python", "NCFLAB_PYTHON", or empty
/// for the default): --python, else $NCFLAB_PYTHON, else Debian's /usr/bin/python3 (torch
/// and matplotlib come from apt there), else python3 on PATH.
std::pair<std::string, std::string> pick_python(const std::string& requested) {
  if (!requested.empty()) return {requested, "--python"};
  if (const char* env = std::getenv("NCFLAB_PYTHON"); env != nullptr && *env != '\0') {
    return {env, "NCFLAB_PYTHON"};
  }
  if (fs::exists("/usr/bin/python3")) return {"/usr/bin/python3", ""};
  return {"python3", ""};
}

/// Runs argv[0] (searched on PATH) with its stdout and stderr forwarded to `out` and `err`,
/// so the library call shows the script's lines where the caller wants them. Returns the
/// exit code (128 + signal when killed), or throws std::system_error when it cannot start.
int run_forwarding_output(const std::vector<std::string>& argv, std::ostream& out,
                          std::ostream& err) {
  std::array<int, 2> out_pipe{};
  std::array<int, 2> err_pipe{};
  if (pipe2(out_pipe.data(), O_CLOEXEC) != 0 || pipe2(err_pipe.data(), O_CLOEXEC) != 0) {
    throw std::system_error(errno, std::generic_category(), "pipe");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int spawn_error = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (spawn_error != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    throw std::system_error(spawn_error, std::generic_category());
  }
  std::array<pollfd, 2> fds{pollfd{out_pipe[0], POLLIN, 0}, pollfd{err_pipe[0], POLLIN, 0}};
  const std::array<std::ostream*, 2> sinks{&out, &err};
  std::array<char, 4096> buffer{};
  for (int open = 2; open > 0;) {
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t count = read(fds[i].fd, buffer.data(), buffer.size());
      if (count > 0) {
        sinks[i]->write(buffer.data(), count).flush();
      } else if (count == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;  // poll skips it
        --open;
      }
    }
  }
  for (const auto& fd : fds) {
    if (fd.fd >= 0) close(fd.fd);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "waitpid");
  }
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

}  // namespace

int report_command(const ReportArguments& arguments, std::ostream& out, std::ostream& err) {
  const auto script = find_report_script();
  const auto [python, chosen_by] = pick_python(arguments.python);
  try {
    return run_forwarding_output({python, script.string(), arguments.directory}, out, err);
  } catch (const std::system_error& e) {
    // An interpreter the user named is bad input; the default one missing is an install problem.
    const std::string found = fmt::format("'{}' ({})", python, e.code().message());
    if (!chosen_by.empty()) {
      throw InputError({chosen_by == "--python" ? "command line" : "environment", 0}, chosen_by,
                       "a Python 3 interpreter", found);
    }
    throw std::runtime_error(fmt::format(
        "cannot run the Python interpreter {}: install python3 and python3-matplotlib, or pass "
        "--python PATH (or set NCFLAB_PYTHON)",
        found));
  }
}

}  // namespace ncflab
