// Reproducible random streams: every random draw in ncflab comes from a CPU
// generator seeded by (seed, stream), so results match across devices and runs.
#pragma once

#include <ATen/core/Generator.h>

#include <cstdint>

namespace ncflab {

/// Independent purposes that draw random numbers; one seed gives each its own stream,
/// so e.g. the data of seed 0 and the weights of member 0 are not correlated.
enum class RandomStream : std::uint64_t { init = 1, data = 2, teacher = 3, kkt = 4 };

/// Mixes (seed, stream) into a 64-bit generator seed (splitmix64 finaliser).
std::uint64_t stream_seed(std::uint64_t seed, RandomStream stream);

/// A fresh CPU generator for (seed, stream). Draw on CPU, then move to the device.
at::Generator make_generator(std::uint64_t seed, RandomStream stream);

}  // namespace ncflab
