// Directory locks: flock on DIR/.ncflab.lock, which holds the owner's PID for the message a
// second writer gets.
#include "ncflab/core/directory_lock.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include "ncflab/core/errors.h"
#include "ncflab/core/files.h"

namespace ncflab {

struct DirectoryLock::Held {
  std::string key;
  int fd = -1;
  ~Held();
};

namespace {

// The locks this process holds, by canonical directory: flock conflicts between two open
// file descriptions of one process too, so a second acquire must reuse the first.
std::mutex held_mutex;
std::map<std::string, std::weak_ptr<DirectoryLock::Held>>& held_locks() {
  static std::map<std::string, std::weak_ptr<DirectoryLock::Held>> locks;
  return locks;
}

std::string owner_of(const std::filesystem::path& lock_path) {
  try {
    const std::string pid = read_whole_file(lock_path);
    const auto end = pid.find_first_not_of("0123456789");
    if (end != 0 && !pid.empty()) return fmt::format("process {}", pid.substr(0, end));
  } catch (const IoError&) {
  }
  return "another process";
}

}  // namespace

DirectoryLock::Held::~Held() {
  {
    std::lock_guard<std::mutex> guard(held_mutex);
    held_locks().erase(key);
  }
  if (fd >= 0) ::close(fd);  // releases the flock
}

DirectoryLock DirectoryLock::acquire(const std::filesystem::path& directory) {
  std::error_code error;
  auto canonical = std::filesystem::canonical(directory, error);
  if (error) canonical = std::filesystem::absolute(directory).lexically_normal();
  const std::string key = canonical.string();
  std::lock_guard<std::mutex> guard(held_mutex);
  if (auto held = held_locks()[key].lock()) return DirectoryLock(held);

  const auto lock_path = canonical / kLockFile;
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw IoError(fmt::format("{}: cannot create the lock file ({})", lock_path.string(),
                              std::strerror(errno)));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int reason = errno;
    ::close(fd);
    if (reason != EWOULDBLOCK) {
      throw IoError(fmt::format("{}: cannot lock ({})", lock_path.string(), std::strerror(reason)));
    }
    throw InputError({"command line", 0}, "--out",
                     "a directory no other ncflab process is writing into",
                     fmt::format("'{}' in use by {} (it holds {})", directory.string(),
                                 owner_of(lock_path), kLockFile));
  }
  // Ours now: record the PID for the message a second writer gets (best effort).
  const std::string pid = fmt::format("{}\n", ::getpid());
  if (::ftruncate(fd, 0) == 0) {
    [[maybe_unused]] const ssize_t ignored = ::pwrite(fd, pid.data(), pid.size(), 0);
  }
  auto held = std::make_shared<Held>();
  held->key = key;
  held->fd = fd;
  held_locks()[key] = held;
  return DirectoryLock(held);
}

}  // namespace ncflab
