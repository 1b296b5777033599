// FNV-1a, 64 bits: offset basis and prime from the algorithm's definition.
#include "ncflab/core/fingerprint.h"

#include <fmt/format.h>

#include <cstdint>

namespace ncflab {

std::string fingerprint(std::string_view bytes) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (const char byte : bytes) {
    hash ^= static_cast<unsigned char>(byte);
    hash *= 0x100000001b3ULL;
  }
  return fmt::format("fnv1a64:{:016x}", hash);
}

}  // namespace ncflab
