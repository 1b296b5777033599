// The vector instruction sets ncflab's CPU kernels are compiled for, and which one this
// machine runs: the binary targets any x86-64, and picks wider kernels at start-up.
#pragma once

#include <string>

namespace ncflab {

enum class CpuIsa {
  generic,  ///< the build's baseline (SSE2 on x86-64), no FMA
  avx2,     ///< AVX2 with FMA: 4 doubles per register
  avx512,   ///< AVX-512 F/DQ/VL with FMA: 8 doubles per register
};

/// "generic", "avx2", "avx512".
const char* cpu_isa_name(CpuIsa isa);

/// Whether this build has kernels for `isa` and this CPU (and its OS) can run them.
bool cpu_isa_available(CpuIsa isa);

/// The widest available instruction set, lowered by the environment variable
/// NCFLAB_ISA=generic|avx2|avx512 (for comparisons and benchmarks; a set this CPU lacks
/// is refused with a warning). Decided once per process.
CpuIsa active_cpu_isa();

/// One line for logs and benchmarks: "avx512 (of generic, avx2, avx512)".
std::string cpu_isa_summary();

}  // namespace ncflab
