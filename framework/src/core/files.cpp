// Atomic writes and tensor dicts that Python's torch.load reads.
#include "ncflab/core/files.h"

#include <caffe2/serialize/inline_container.h>
#include <fmt/format.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>

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
