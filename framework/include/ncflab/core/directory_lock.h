// One writer per directory: a command that writes into a directory holds an exclusive
// flock on DIR/.ncflab.lock for its whole life, so a second ncflab process writing there
// is refused instead of mixing its files with the first's.
#pragma once

#include <filesystem>
#include <memory>

namespace ncflab {

/// File name of the lock inside a locked directory (left in place: removing a lock file
/// while another process waits on it would let two writers in).
inline constexpr const char* kLockFile = ".ncflab.lock";

/// An exclusive lock on a directory, released when the last copy is destroyed (or the
/// process ends, however it ends). Taking a lock this process already holds returns it
/// again, so a command and the library calls under it can both ask for it.
class DirectoryLock {
 public:
  /// Locks `directory` (which must exist). Another process's lock is an InputError naming
  /// the directory and that process.
  static DirectoryLock acquire(const std::filesystem::path& directory);

  struct Held;  // the open lock file; defined in directory_lock.cpp

 private:
  explicit DirectoryLock(std::shared_ptr<Held> held) : held_(std::move(held)) {}
  std::shared_ptr<Held> held_;
};

}  // namespace ncflab
