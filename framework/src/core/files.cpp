// Checked reads and writes, atomic files and tensor dicts that Python's torch.load reads.
#include "ncflab/core/files.h"

#include <caffe2/serialize/inline_container.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "ncflab/core/errors.h"

namespace ncflab {

namespace {

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& what, int error) {
  throw IoError(fmt::format("{}: {} ({})", path.string(), what, std::strerror(error)));
}

// fsync of the directory holding `path`, so that a rename into it survives a crash.
void sync_parent_directory(const std::filesystem::path& path) {
  const auto parent = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  const int fd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // best effort: the file itself is already on disk
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

std::string read_whole_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, "cannot open", errno);
  std::string text;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got == 0) break;
    if (got < 0) {
      if (errno == EINTR) continue;
      const int error = errno;
      ::close(fd);
      fail(path, fmt::format("read error after {} bytes", text.size()), error);
    }
    text.append(buffer, static_cast<size_t>(got));
  }
  ::close(fd);
  return text;
}

OutputFile::OutputFile(std::filesystem::path path, Mode mode) : path_(std::move(path)) {
  const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (mode == Mode::append ? O_APPEND : O_TRUNC);
  fd_ = ::open(path_.c_str(), flags, 0644);
  if (fd_ < 0) fail(path_, "cannot open for writing", errno);
  const off_t end = ::lseek(fd_, 0, SEEK_END);
  committed_ = end > 0 ? end : 0;
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
}

void OutputFile::write(std::string_view text) {
  buffer_.append(text);
  if (buffer_.size() >= (1 << 16)) flush();
}

void OutputFile::flush() {
  TORCH_CHECK(fd_ >= 0, "OutputFile::flush after close: ", path_.string());
  size_t written = 0;
  while (written < buffer_.size()) {
    const ssize_t put = ::write(fd_, buffer_.data() + written, buffer_.size() - written);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) {
      const int error = put < 0 ? errno : EIO;
      // Back to what the last successful flush left (whole lines, for a CSV): a full disk
      // must not leave half a row behind.
      [[maybe_unused]] const int ignored = ::ftruncate(fd_, committed_);
      buffer_.clear();
      fail(path_, "write failed", error);
    }
    written += static_cast<size_t>(put);
  }
  committed_ += static_cast<off_t>(written);
  buffer_.clear();
}

void OutputFile::close(bool sync) {
  flush();
  if (sync && ::fsync(fd_) != 0 && errno != EINVAL) fail(path_, "write failed", errno);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0 && errno != EINTR) fail(path_, "write failed", errno);
}

void write_file_atomically(const std::filesystem::path& path, std::string_view text,
                           Durability durability) {
  const bool sync = durability == Durability::synced;
  const std::filesystem::path temporary = path.string() + ".tmp";
  try {
    OutputFile file(temporary, OutputFile::Mode::truncate);
    file.write(text);
    file.close(sync);
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    throw;
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    fail(path, "cannot replace", error);
  }
  if (sync) sync_parent_directory(path);
}

namespace {

// torch::pickle_save's archive, but with the dict written as a plain dict: pickle_save
// tags typed containers with torch.jit._pickle.restore_type_tag, a global that the
// weights-only unpickler of PyTorch ≥ 2.6's torch.load (its default) refuses, so a plain
// torch.load(path) failed there. Without the tag the file holds only a dict, tensors and
// their storages, which every torch.load reads (1.13 and 2.x, weights_only or not).
std::string pickle_untagged(const c10::IValue& value) {
  std::string pickle;
  torch::jit::Pickler pickler([&](const char* bytes, size_t size) { pickle.append(bytes, size); },
                              /*tensor_table=*/nullptr, /*type_renamer=*/nullptr,
                              /*memoized_class_types=*/nullptr,
                              /*get_tensor_id=*/nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(value);
  pickler.stop();
  std::string archive;
  {
    caffe2::serialize::PyTorchStreamWriter writer([&](const void* bytes, size_t size) {
      archive.append(static_cast<const char*>(bytes), size);
      return size;
    });
    torch::jit::writeArchiveAndTensors("data", pickle.data(), pickle.size(), pickler.tensorData(),
                                       writer);
  }  // the writer's destructor writes the archive's directory
  return archive;
}

}  // namespace

void save_tensor_dict(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [name, tensor] : tensors) {
    // Floating point as float64 (what Python compares against); integers (step numbers) kept.
    const auto dtype = tensor.is_floating_point() ? torch::kFloat64 : tensor.scalar_type();
    dict.insert(name, tensor.detach().to(torch::kCPU, dtype).contiguous());
  }
  write_file_atomically(path, pickle_untagged(c10::IValue(dict)));
}

std::vector<std::pair<std::string, torch::Tensor>> load_tensor_dict(
    const std::filesystem::path& path) {
  if (!std::filesystem::is_regular_file(path)) {
    throw InputError({path.string(), 0}, "", "a readable tensor file", "no such file");
  }
  const std::string text = read_whole_file(path);
  const std::vector<char> bytes(text.begin(), text.end());
  c10::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const c10::Error& e) {
    throw InputError({path.string(), 0}, "", "a dict of tensors written by torch.save or ncflab",
                     "an unreadable file");
  }
  if (!value.isGenericDict()) {
    throw InputError({path.string(), 0}, "", "a dict of tensors", value.tagKind());
  }
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& entry : value.toGenericDict()) {
    tensors.emplace_back(entry.key().toStringRef(), entry.value().toTensor());
  }
  return tensors;
}

}  // namespace ncflab
