//===- moe-cpu-peak.cpp - The CPU's float32 FMA rate and copy bandwidth ---===//
//
//   moe-cpu-peak [--threads N] [--seconds S]
//
// The machine's limits that tools/bench/cpu_bench.py divides its measured
// rates by: the float32 fused multiply-add rate of N threads, each running
// independent FMA chains in registers with the widest vectors the running CPU
// has (AVX-512, else AVX2 + FMA, else 128-bit vectors), and the copy bandwidth
// of N threads over buffers far larger than the last-level cache (bytes read
// plus bytes written). Prints one JSON line:
//
//   {"threads":N,"isa":"avx512f","vector_bits":512,"fma_gflops":...,
//    "copy_gbs":...}
//
// Each figure is the best of five repetitions (a limit, not a typical rate);
// one FMA repetition lasts about S seconds (default 1).
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/CommandLine.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MOE_PEAK_X86 1
#endif

namespace {

using Clock = std::chrono::steady_clock;

// Twelve independent accumulators cover the FMA latency (4 cycles) times the
// FMA pipes (2) of current x86 cores with room to spare; each iteration is 12
// vector FMAs of 2 FLOPs per lane. `seed` is read at run time so that the
// compiler can neither fold the chains nor merge equal ones.
#define MOE_PEAK_CHAINS(VEC, SET1, FMA, ADD, STORE, LANES)                      \
  VEC a = SET1(0.99999f), b = SET1(1e-6f * seed);                              \
  VEC c0 = SET1(seed), c1 = SET1(seed + 1), c2 = SET1(seed + 2),              \
      c3 = SET1(seed + 3), c4 = SET1(seed + 4), c5 = SET1(seed + 5),          \
      c6 = SET1(seed + 6), c7 = SET1(seed + 7), c8 = SET1(seed + 8),          \
      c9 = SET1(seed + 9), c10 = SET1(seed + 10), c11 = SET1(seed + 11);      \
  for (long i = 0; i < iterations; ++i) {                                      \
    c0 = FMA(c0, a, b);                                                        \
    c1 = FMA(c1, a, b);                                                        \
    c2 = FMA(c2, a, b);                                                        \
    c3 = FMA(c3, a, b);                                                        \
    c4 = FMA(c4, a, b);                                                        \
    c5 = FMA(c5, a, b);                                                        \
    c6 = FMA(c6, a, b);                                                        \
    c7 = FMA(c7, a, b);                                                        \
    c8 = FMA(c8, a, b);                                                        \
    c9 = FMA(c9, a, b);                                                        \
    c10 = FMA(c10, a, b);                                                      \
    c11 = FMA(c11, a, b);                                                      \
  }                                                                            \
  VEC sum = ADD(ADD(ADD(ADD(c0, c1), ADD(c2, c3)), ADD(ADD(c4, c5), ADD(c6, c7))), \
                ADD(ADD(c8, c9), ADD(c10, c11)));                              \
  float lanes[LANES];                                                          \
  STORE(lanes, sum);                                                           \
  float total = 0;                                                             \
  for (float lane : lanes)                                                     \
    total += lane;                                                             \
  return total;

#ifdef MOE_PEAK_X86
__attribute__((target("avx512f"))) float chains512(long iterations,
                                                    float seed) {
  MOE_PEAK_CHAINS(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps,
                  _mm512_storeu_ps, 16)
}

__attribute__((target("avx2,fma"))) float chains256(long iterations,
                                                     float seed) {
  MOE_PEAK_CHAINS(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps,
                  _mm256_storeu_ps, 8)
}
#endif

// Any other CPU: 128-bit vectors of the compiler's generic vector extension
// (a multiply and an add where the target has no FMA).
using Vec4 = float __attribute__((vector_size(16)));
Vec4 set4(float v) { return Vec4{v, v, v, v}; }
Vec4 fma4(Vec4 c, Vec4 a, Vec4 b) { return c * a + b; }
Vec4 add4(Vec4 x, Vec4 y) { return x + y; }
void store4(float *out, Vec4 v) { std::memcpy(out, &v, sizeof(v)); }
float chains128(long iterations, float seed) {
  MOE_PEAK_CHAINS(Vec4, set4, fma4, add4, store4, 4)
}

struct Isa {
  const char *name;
  int vectorBits;
  float (*chains)(long, float);
};

Isa bestIsa() {
#ifdef MOE_PEAK_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f"))
    return {"avx512f", 512, chains512};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return {"avx2+fma", 256, chains256};
#endif
  return {"generic", 128, chains128};
}

// Runs body(thread) on `threads` threads started together; returns seconds.
template <typename Body>
double onThreads(int threads, Body body) {
  std::vector<std::thread> pool;
  Clock::time_point start = Clock::now();
  for (int t = 0; t < threads; ++t)
    pool.emplace_back(body, t);
  for (std::thread &thread : pool)
    thread.join();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double fmaGflops(const Isa &isa, int threads, double seconds) {
  // Calibrate the iteration count on one thread so that a run lasts about
  // `seconds`, then time all threads together.
  long iterations = 1 << 16;
  volatile float sink = 0;
  for (;;) {
    Clock::time_point start = Clock::now();
    sink = sink + isa.chains(iterations, 1.0f);
    double took =
        std::chrono::duration<double>(Clock::now() - start).count();
    if (took > 0.02 || iterations > (1L << 40)) {
      iterations = std::max(1L, static_cast<long>(iterations * seconds / took));
      break;
    }
    iterations *= 2;
  }
  long flopsPerThread = iterations * 12L * (isa.vectorBits / 32) * 2;
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    std::vector<float> results(threads);
    double took = onThreads(threads, [&](int t) {
      results[t] = isa.chains(iterations, 1.0f + static_cast<float>(t));
    });
    for (float r : results)
      sink = sink + r;
    best = std::max(best, static_cast<double>(flopsPerThread) * threads /
                              took * 1e-9);
  }
  return best;
}

double copyGbs(int threads) {
  // 256 MiB per direction in all: far beyond any current last-level cache.
  const size_t bytes = size_t(256) << 20;
  const size_t chunk = bytes / threads;
  // Not value-initialised: each thread's chunks are first touched (and so
  // placed) by the thread that copies them.
  std::unique_ptr<char[]> from(new char[bytes]), to(new char[bytes]);
  onThreads(threads, [&](int t) {
    std::memset(from.get() + t * chunk, 1, chunk);
    std::memset(to.get() + t * chunk, 0, chunk);
  });
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    double took = onThreads(threads, [&](int t) {
      std::memcpy(to.get() + t * chunk, from.get() + t * chunk, chunk);
    });
    best = std::max(best, 2.0 * chunk * threads / took * 1e-9);
  }
  return best;
}

const char *const usage =
    R"(moe-cpu-peak: the CPU's float32 FMA rate and copy bandwidth

usage: moe-cpu-peak [--threads N] [--seconds S]

  --threads N    threads measured together, 1..4096 (default 1)
  --seconds S    length of one timed FMA repetition, in (0, 60] (default 1)

Prints one JSON line: threads, isa, vector_bits, fma_gflops, copy_gbs.
)";

/// A number of seconds in (0, 60].
bool parseSeconds(const std::string &text, double &value) {
  char *end = nullptr;
  value = std::strtod(text.c_str(), &end);
  return !text.empty() && *end == '\0' && value > 0 && value <= 60;
}

} // namespace

int main(int argc, char **argv) {
  std::string threadsText = "1", secondsText = "1";
  moe::runtime::FlagParser flags;
  flags.tool = "moe-cpu-peak";
  flags.usage = usage;
  flags.valued = {{"--threads", &threadsText}, {"--seconds", &secondsText}};
  if (std::optional<int> status = flags.parse(argc, argv))
    return *status;
  int64_t count = 0;
  if (!moe::runtime::parseCount(threadsText, count) || count > 4096)
    return flags.bad("--threads needs a count in 1..4096, got '" + threadsText +
                     "'");
  int threads = static_cast<int>(count);
  double seconds = 0;
  if (!parseSeconds(secondsText, seconds))
    return flags.bad("--seconds needs a number in (0, 60], got '" +
                     secondsText + "'");
  Isa isa = bestIsa();
  double gflops = fmaGflops(isa, threads, seconds);
  double gbs = copyGbs(threads);
  std::printf("{\"threads\":%d,\"isa\":\"%s\",\"vector_bits\":%d,"
              "\"fma_gflops\":%.1f,\"copy_gbs\":%.1f}\n",
              threads, isa.name, isa.vectorBits, gflops, gbs);
  return 0;
}
