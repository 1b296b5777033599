// A fuzz input as a file on disk: ncflab's readers take paths, so each input is written to
// one temporary file per fuzzing process (rewritten for every input, removed at exit).
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace ncflab::fuzz {

class FuzzInputFile {
 public:
  /// A new empty file $TMPDIR/ncflab-fuzz-<name>-XXXXXX<suffix> (/tmp without TMPDIR).
  FuzzInputFile(const std::string& name, const std::string& suffix) {
    const char* tmpdir = std::getenv("TMPDIR");
    std::string pattern = std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") + "/ncflab-fuzz-" +
                          name + "-XXXXXX" + suffix;
    const int fd = mkstemps(pattern.data(), static_cast<int>(suffix.size()));
    if (fd < 0) {
      std::perror(("fuzz: cannot create " + pattern).c_str());
      std::abort();
    }
    close(fd);
    path_ = pattern;
  }
  ~FuzzInputFile() {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
  }
  FuzzInputFile(const FuzzInputFile&) = delete;
  FuzzInputFile& operator=(const FuzzInputFile&) = delete;

  /// Replaces the file's contents with `size` bytes at `data`; returns the path.
  const std::string& write(const uint8_t* data, size_t size) {
    std::FILE* file = std::fopen(path_.c_str(), "wb");
    if (!file || (size > 0 && std::fwrite(data, 1, size, file) != size) || std::fclose(file) != 0) {
      std::perror(("fuzz: cannot write " + path_).c_str());
      std::abort();
    }
    return path_;
  }

 private:
  std::string path_;
};

}  // namespace ncflab::fuzz
