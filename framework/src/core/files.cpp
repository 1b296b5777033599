// Atomic writes and tensor dicts that Python's torch.load reads.
#include "ncflab/core/files.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>

#include "ncflab/core/errors.h"

namespace ncflab {

std::string read_whole_file(const std::filesystem::path& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!file) {
    throw std::runtime_error(
        fmt::format("{}: cannot open ({})", path.string(), std::strerror(errno)));
  }
  std::string text;
  char buffer[1 << 16];
  for (size_t got; (got = std::fread(buffer, 1, sizeof buffer, file.get())) > 0;) {
    text.append(buffer, got);
  }
  // fread stops at the end of the file and at a read error alike: only the first is an end.
  if (std::ferror(file.get())) {
    throw std::runtime_error(fmt::format("{}: read error after {} bytes ({})", path.string(),
                                         text.size(), std::strerror(errno)));
  }
  return text;
}

void write_file_atomically(const std::filesystem::path& path, const std::string& text) {
  const auto temporary = path.string() + ".tmp";
  {
    std::ofstream file(temporary, std::ios::binary | std::ios::trunc);
    TORCH_CHECK(file, "cannot write ", temporary);
    file << text;
    file.flush();
    TORCH_CHECK(file, "failed writing ", temporary);
  }
  std::filesystem::rename(temporary, path);
}

void save_tensor_dict(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [name, tensor] : tensors) {
    // Floating point as float64 (what Python compares against); integers (step numbers) kept.
    const auto dtype = tensor.is_floating_point() ? torch::kFloat64 : tensor.scalar_type();
    dict.insert(name, tensor.detach().to(torch::kCPU, dtype).contiguous());
  }
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  write_file_atomically(path, std::string(bytes.begin(), bytes.end()));
}

std::vector<std::pair<std::string, torch::Tensor>> load_tensor_dict(
    const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    throw InputError({path.string(), 0}, "", "a readable tensor file", "no such file");
  }
  const std::vector<char> bytes((std::istreambuf_iterator<char>(file)),
                                std::istreambuf_iterator<char>());
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
