// Instruction-set detection: the compiler's CPU model (cpuid, and xgetbv for the OS's
// support of the wider registers), queried once.
#include "ncflab/core/cpu_isa.h"

#include <cstdlib>
#include <string>

#include "ncflab/core/log.h"

namespace ncflab {
namespace {

bool cpu_supports(CpuIsa isa) {
#if defined(NCFLAB_X86_KERNELS) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();  // idempotent; needed when asked before static constructors ran
#endif
  switch (isa) {
    case CpuIsa::generic:
      return true;
    case CpuIsa::avx2:
#if defined(NCFLAB_X86_KERNELS) && (defined(__GNUC__) || defined(__clang__))
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
      return false;
#endif
    case CpuIsa::avx512:
#if defined(NCFLAB_X86_KERNELS) && (defined(__GNUC__) || defined(__clang__))
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2") &&
             __builtin_cpu_supports("fma");
#else
      return false;
#endif
  }
  return false;
}

CpuIsa widest_available() {
  for (const auto isa : {CpuIsa::avx512, CpuIsa::avx2}) {
    if (cpu_isa_available(isa)) return isa;
  }
  return CpuIsa::generic;
}

CpuIsa choose_isa() {
  const CpuIsa widest = widest_available();
  const char* requested = std::getenv("NCFLAB_ISA");
  if (requested == nullptr || *requested == '\0') return widest;
  for (const auto isa : {CpuIsa::generic, CpuIsa::avx2, CpuIsa::avx512}) {
    if (std::string(requested) != cpu_isa_name(isa)) continue;
    if (cpu_isa_available(isa)) return isa;
    log_warning("NCFLAB_ISA={}: this CPU or build cannot run it; using {}", requested,
                cpu_isa_name(widest));
    return widest;
  }
  log_warning("NCFLAB_ISA={}: expected generic, avx2 or avx512; using {}", requested,
              cpu_isa_name(widest));
  return widest;
}

}  // namespace

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::generic:
      return "generic";
    case CpuIsa::avx2:
      return "avx2";
    case CpuIsa::avx512:
      return "avx512";
  }
  return "unknown";
}

bool cpu_isa_available(CpuIsa isa) {
  static const bool available[] = {cpu_supports(CpuIsa::generic), cpu_supports(CpuIsa::avx2),
                                   cpu_supports(CpuIsa::avx512)};
  return available[static_cast<int>(isa)];
}

CpuIsa active_cpu_isa() {
  static const CpuIsa isa = choose_isa();
  return isa;
}

std::string cpu_isa_summary() {
  std::string available;
  for (const auto isa : {CpuIsa::generic, CpuIsa::avx2, CpuIsa::avx512}) {
    if (cpu_isa_available(isa))
      available += (available.empty() ? "" : ", ") + std::string(cpu_isa_name(isa));
  }
  return std::string(cpu_isa_name(active_cpu_isa())) + " (of " + available + ")";
}

}  // namespace ncflab
