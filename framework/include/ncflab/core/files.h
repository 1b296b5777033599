// How ncflab reads and writes files: every read and write checked (a full disk or a read
// error is an IoError naming the path, never a short file or a silent success), whole files
// atomically (temporary file, fsync, rename: a reader never sees half a file), and tensors as
// dicts that Python's torch.load reads (torch::pickle_save's format).
#pragma once

#include <sys/types.h>
#include <torch/torch.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ncflab {

/// A read or write that failed (exit 1): "PATH: write failed (No space left on device)".
class IoError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The whole of the file at `path`. A file that cannot be opened or read is an IoError
/// "PATH: read error after N bytes (Input/output error)", never a short file.
std::string read_whole_file(const std::filesystem::path& path);

/// A file written front to back through its own buffer, every system call checked: a failed
/// write is an IoError naming the path and the system's reason. close() syncs it to disk.
class OutputFile {
 public:
  enum class Mode { truncate, append };
  OutputFile(std::filesystem::path path, Mode mode);
  ~OutputFile();  // closes quietly: errors surface from write, flush and close
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  void write(std::string_view text);
  /// Hands the buffer to the kernel. A failed flush cuts the file back to where the last
  /// successful one left it, so it never ends inside one flush's text.
  void flush();
  /// Flushes, fsyncs (a delayed-allocation filesystem reports a full disk only here; not
  /// when `sync` is false) and closes.
  void close(bool sync = true);
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  off_t committed_ = 0;  // the file's size after the last successful flush
  std::string buffer_;
};

/// Whether a file must be on disk (fsync) before it replaces the old one: results and
/// checkpoints must; files that can be rewritten from others (a sweep's point configs,
/// 10 000 of them in a big grid) need not pay two fsyncs each.
enum class Durability { synced, unsynced };

/// Writes `text` to `path` through a temporary file, fsync and a rename; on failure the
/// temporary file is removed and `path` is left as it was.
void write_file_atomically(const std::filesystem::path& path, std::string_view text,
                           Durability durability = Durability::synced);

/// Saves {name: tensor} as torch::pickle_save does, untagged (floating point as float64, integers
/// kept; CPU); Python reads it with torch.load(path). Written atomically.
void save_tensor_dict(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors);

/// Reads a dict written by save_tensor_dict (or Python's torch.save of a dict of tensors).
/// Throws InputError naming the file when it is missing or not such a dict.
std::vector<std::pair<std::string, torch::Tensor>> load_tensor_dict(
    const std::filesystem::path& path);

}  // namespace ncflab
