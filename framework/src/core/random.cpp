// Seed mixing for ncflab's random streams.
// splitmix64 turns nearby seeds (0, 1, 2, ...) into unrelated generator states.
#include "ncflab/core/random.h"

#include <ATen/CPUGeneratorImpl.h>

namespace ncflab {

std::uint64_t stream_seed(std::uint64_t seed, RandomStream stream) {
  std::uint64_t z = seed * 0x9E3779B97F4A7C15ULL + static_cast<std::uint64_t>(stream);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

at::Generator make_generator(std::uint64_t seed, RandomStream stream) {
  return at::detail::createCPUGenerator(stream_seed(seed, stream));
}

}  // namespace ncflab
