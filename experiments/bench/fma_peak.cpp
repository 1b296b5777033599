// The float64 peak this machine gives right now, measured: on every core at once, chains of
// fused multiply-adds held in registers (enough independent ones to cover the FMA units'
// latency), in the widest instruction set the CPU runs. bench.py divides ncflab's GFLOP/s
// by it; on a shared or throttled host it is what a program can get, unlike a peak computed
// from the nominal clock.
//
//   ncflab-fma-peak [--seconds S] [--threads N]
//
// Prints one JSON line: {"isa": ..., "threads": N, "gflops": best, "median_gflops": ...,
// "trials": [...]}.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define NCFLAB_FMA_X86 1
#endif

namespace {

// Twelve independent chains: two FMA units × a latency of four cycles need eight in flight.
constexpr int kChains = 12;

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

#ifdef NCFLAB_FMA_X86
__attribute__((target("avx512f"))) double chains_avx512(long iterations) {
  __m512d sum[kChains];
  const __m512d factor = _mm512_set1_pd(0.999999999);
  const __m512d offset = _mm512_set1_pd(1e-9);
  for (int c = 0; c < kChains; ++c) sum[c] = _mm512_set1_pd(c);
  for (long i = 0; i < iterations; ++i) {
    for (int c = 0; c < kChains; ++c) sum[c] = _mm512_fmadd_pd(sum[c], factor, offset);
  }
  double total = 0;
  double lanes[8];
  for (int c = 0; c < kChains; ++c) {
    _mm512_storeu_pd(lanes, sum[c]);
    for (const double lane : lanes) total += lane;
  }
  return total;
}

__attribute__((target("avx2,fma"))) double chains_avx2(long iterations) {
  __m256d sum[kChains];
  const __m256d factor = _mm256_set1_pd(0.999999999);
  const __m256d offset = _mm256_set1_pd(1e-9);
  for (int c = 0; c < kChains; ++c) sum[c] = _mm256_set1_pd(c);
  for (long i = 0; i < iterations; ++i) {
    for (int c = 0; c < kChains; ++c) sum[c] = _mm256_fmadd_pd(sum[c], factor, offset);
  }
  double total = 0;
  double lanes[4];
  for (int c = 0; c < kChains; ++c) {
    _mm256_storeu_pd(lanes, sum[c]);
    total += lanes[0] + lanes[1] + lanes[2] + lanes[3];
  }
  return total;
}
#endif

// Without FMA: a multiply and an add per pair of flops, two lanes (SSE2, or scalar elsewhere).
double chains_generic(long iterations) {
  double sum[2 * kChains];
  for (int c = 0; c < 2 * kChains; ++c) sum[c] = c;
  for (long i = 0; i < iterations; ++i) {
    for (int c = 0; c < 2 * kChains; ++c) sum[c] = sum[c] * 0.999999999 + 1e-9;
  }
  double total = 0;
  for (int c = 0; c < 2 * kChains; ++c) total += sum[c];
  return total;
}

struct Isa {
  const char* name;
  double (*chains)(long);
  int flops_per_iteration;  // per call of the loop body: chains × lanes × 2
};

Isa widest_isa() {
#ifdef NCFLAB_FMA_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return {"avx512", chains_avx512, kChains * 8 * 2};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return {"avx2", chains_avx2, kChains * 4 * 2};
#endif
  return {"generic", chains_generic, 2 * kChains * 2};
}

// GFLOP/s of `threads` threads each running `iterations` loop bodies, from the first start
// to the last finish.
double trial(const Isa& isa, int threads, long iterations) {
  std::vector<std::thread> team;
  std::vector<double> sinks(static_cast<size_t>(threads));
  const double start = now_seconds();
  for (int t = 0; t < threads; ++t) {
    team.emplace_back([&, t] { sinks[static_cast<size_t>(t)] = isa.chains(iterations); });
  }
  for (auto& thread : team) thread.join();
  const double seconds = now_seconds() - start;
  volatile double keep = 0;
  for (const double sink : sinks) keep = keep + sink;
  return static_cast<double>(threads) * static_cast<double>(iterations) * isa.flops_per_iteration /
         seconds / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 2.0;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (arg == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: ncflab-fma-peak [--seconds S] [--threads N]\n");
      return 2;
    }
  }
  if (seconds <= 0 || threads < 1) {
    std::fprintf(stderr, "ncflab-fma-peak: --seconds must be > 0 and --threads >= 1\n");
    return 2;
  }
  const Isa isa = widest_isa();
  // Size a trial to about a tenth of the budget from a short calibration run.
  long iterations = 1 << 16;
  const double calibration = trial(isa, 1, iterations);
  iterations = std::max<long>(
      iterations, static_cast<long>(seconds / 10 * calibration * 1e9 / isa.flops_per_iteration));
  std::vector<double> trials;
  const double deadline = now_seconds() + seconds;
  while (trials.size() < 3 || (now_seconds() < deadline && trials.size() < 50)) {
    trials.push_back(trial(isa, threads, iterations));
  }
  std::vector<double> sorted = trials;
  std::sort(sorted.begin(), sorted.end());
  std::printf(
      "{\"isa\": \"%s\", \"threads\": %d, \"gflops\": %.2f, \"median_gflops\": %.2f, \"trials\": [",
      isa.name, threads, sorted.back(), sorted[sorted.size() / 2]);
  for (size_t i = 0; i < trials.size(); ++i) std::printf("%s%.2f", i ? ", " : "", trials[i]);
  std::printf("]}\n");
  return 0;
}
