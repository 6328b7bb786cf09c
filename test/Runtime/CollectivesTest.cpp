//===- CollectivesTest.cpp - The collective engines under mpirun ---*- C++
//-*-===//
//
// Run as `mpirun -np N moe-collectives-test` (MPI engine over N ranks),
// `moe-collectives-test --single`, or, where NCCL is built,
// `mpirun -np N moe-collectives-test --nccl` (NCCL over N GPUs, buffers in
// CUDA managed memory; exit status 77, "skipped", without a GPU). The same
// source builds moe-nccl-test, without MPI, for one rank on a GPU machine
// that has no MPI: `moe-nccl-test --nccl`. Each
// exchange is checked element by element on every rank; any mismatch prints
// what differed and exits 1.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/Collectives.h"
#include "moe/Runtime/Error.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#ifdef MOE_TEST_NCCL
#include <cuda_runtime_api.h>
#endif

using namespace moe::runtime;

namespace {

/// The buffers exchanged live in CUDA managed memory for NCCL.
bool managedMemory = false;

/// A buffer of `n` values of T that the engine under test can reach.
template <typename T> class Buffer {
public:
  explicit Buffer(size_t n, T fill = T()) : count(n) {
#ifdef MOE_TEST_NCCL
    if (managedMemory) {
      if (cudaMallocManaged(reinterpret_cast<void **>(&values),
                            std::max<size_t>(n, 1) * sizeof(T)) != cudaSuccess)
        throw Error("cudaMallocManaged failed");
    }
#endif
    if (!managedMemory)
      values = static_cast<T *>(std::malloc(std::max<size_t>(n, 1) * sizeof(T)));
    for (size_t i = 0; i < n; ++i)
      values[i] = fill;
  }
  ~Buffer() {
#ifdef MOE_TEST_NCCL
    if (managedMemory) {
      cudaFree(values);
      return;
    }
#endif
    std::free(values);
  }
  Buffer(const Buffer &) = delete;
  Buffer &operator=(const Buffer &) = delete;
  T *data() { return values; }
  size_t size() const { return count; }
  T &operator[](size_t i) { return values[i]; }

private:
  T *values = nullptr;
  size_t count;
};

int failures = 0;
int checks = 0;

void expect(bool ok, const std::string &what, int rank) {
  ++checks;
  if (!ok) {
    ++failures;
    std::fprintf(stderr, "rank %d: FAILED: %s\n", rank, what.c_str());
  }
}

void testAllToAll(Collectives &c) {
  int n = c.size(), r = c.rank();
  const size_t per = 3;
  Buffer<int32_t> send(per * n), recv(per * n, -1);
  for (int peer = 0; peer < n; ++peer)
    for (size_t j = 0; j < per; ++j)
      send[peer * per + j] = r * 100 + peer * 10 + static_cast<int>(j);
  CommCounters before = c.counters();
  c.allToAll(send.data(), recv.data(), per * sizeof(int32_t));
  bool ok = true;
  for (int peer = 0; peer < n; ++peer)
    for (size_t j = 0; j < per; ++j)
      ok &= recv[peer * per + j] == peer * 100 + r * 10 + static_cast<int>(j);
  expect(ok, "allToAll delivers chunk i of rank p to rank i at slot p", r);
  uint64_t expected = uint64_t(n - 1) * per * sizeof(int32_t);
  expect(c.counters().bytesSent - before.bytesSent == expected &&
             c.counters().bytesReceived - before.bytesReceived == expected,
         "allToAll counts the bytes to and from the other ranks", r);
}

void testAllToAllV(Collectives &c) {
  int n = c.size(), r = c.rank();
  // Rank r sends r + peer + 1 values to each peer.
  std::vector<size_t> sendBytes(n), recvBytes(n);
  for (int peer = 0; peer < n; ++peer) {
    sendBytes[peer] = size_t(r + peer + 1) * sizeof(int64_t);
    recvBytes[peer] = size_t(peer + r + 1) * sizeof(int64_t);
  }
  Buffer<int64_t> send(
      std::accumulate(sendBytes.begin(), sendBytes.end(), size_t(0)) /
      sizeof(int64_t));
  size_t at = 0;
  for (int peer = 0; peer < n; ++peer)
    for (int j = 0; j < r + peer + 1; ++j)
      send[at++] = r * 1000 + peer * 10 + j;
  size_t total = std::accumulate(recvBytes.begin(), recvBytes.end(), size_t(0));
  Buffer<int64_t> recv(total / sizeof(int64_t), -1);
  c.allToAllV(send.data(), sendBytes, recv.data(), recvBytes);
  bool ok = true;
  at = 0;
  for (int peer = 0; peer < n; ++peer)
    for (int j = 0; j < peer + r + 1; ++j)
      ok &= recv[at++] == peer * 1000 + r * 10 + j;
  expect(ok, "allToAllV delivers variable-size blocks in rank order", r);
}

void testAllReduce(Collectives &c) {
  int n = c.size(), r = c.rank();
  Buffer<double> d(2);
  d[0] = double(r);
  d[1] = 1.5;
  c.allReduce(d.data(), d.size(), DType::F64, ReduceOp::Sum);
  expect(d[0] == n * (n - 1) / 2.0 && d[1] == 1.5 * n, "allReduce f64 sum", r);
  Buffer<int64_t> i(2);
  i[0] = r;
  i[1] = -r;
  c.allReduce(i.data(), i.size(), DType::I64, ReduceOp::Max);
  expect(i[0] == n - 1 && i[1] == 0, "allReduce i64 max", r);
  Buffer<float> f(1, 0.25f);
  c.allReduce(f.data(), 1, DType::F32, ReduceOp::Sum);
  expect(f[0] == 0.25f * n, "allReduce f32 sum", r);
  bool threw = false;
  try {
    Buffer<uint16_t> h(1);
    c.allReduce(h.data(), 1, DType::BF16, ReduceOp::Sum);
  } catch (const Error &) {
    threw = true;
  }
  expect(threw || n == 1, "allReduce rejects bf16 with an Error", r);
}

void testAllGather(Collectives &c) {
  int n = c.size(), r = c.rank();
  Buffer<int32_t> mine(2);
  mine[0] = r;
  mine[1] = r * r;
  Buffer<int32_t> all(2 * n, -1);
  c.allGather(mine.data(), all.data(), 2 * sizeof(int32_t));
  bool ok = true;
  for (int p = 0; p < n; ++p)
    ok &= all[2 * p] == p && all[2 * p + 1] == p * p;
  expect(ok, "allGather collects every rank's block in rank order", r);
}

/// Splitting into groups (data-parallel replicas): ranks of one color form
/// an engine of their own, ordered by rank.
void testSplit(Collectives &c) {
  int n = c.size(), r = c.rank();
  if (n % 2 != 0)
    return;
  std::unique_ptr<Collectives> group = c.split(r / 2);
  Buffer<int32_t> mine(1, r), all(2, -1);
  group->allGather(mine.data(), all.data(), sizeof(int32_t));
  expect(group->size() == 2 && group->rank() == r % 2 &&
             all[0] == r / 2 * 2 && all[1] == r / 2 * 2 + 1,
         "split(r / 2) groups ranks 2g and 2g + 1, in rank order", r);
}

/// The NCCL engine over the launcher's ranks, one GPU each; null (after
/// saying why) when this machine has no GPU.
std::unique_ptr<Collectives> makeNCCLOrSkip(std::unique_ptr<Collectives> &mpi) {
#ifdef MOE_TEST_NCCL
  int devices = 0;
  cudaError_t status = cudaGetDeviceCount(&devices);
  if (status != cudaSuccess || devices == 0) {
    std::printf("SKIPPED: no CUDA device here (%s)\n",
                status != cudaSuccess ? cudaGetErrorString(status)
                                      : "0 devices");
    return nullptr;
  }
  // Under a launcher the ranks meet through MPI; alone (or in a build
  // without MPI) one rank needs no bootstrap exchange.
  mpi = launchedByMPI() && haveMPI() ? makeMPICollectives()
                                     : makeSingleRankCollectives();
  managedMemory = true;
  return makeNCCLCollectives(*mpi, mpi->rank() % devices);
#else
  (void)mpi;
  std::printf("SKIPPED: this build has no NCCL engine\n");
  return nullptr;
#endif
}

} // namespace

int main(int argc, char **argv) {
  bool single = argc > 1 && std::strcmp(argv[1], "--single") == 0;
  bool nccl = argc > 1 && std::strcmp(argv[1], "--nccl") == 0;
  try {
    std::unique_ptr<Collectives> bootstrap;
    std::unique_ptr<Collectives> c =
        single ? makeSingleRankCollectives()
        : nccl ? makeNCCLOrSkip(bootstrap)
               : makeMPICollectives();
    if (!c)
      return 77; // CTest: skipped.
    testAllToAll(*c);
    testAllToAllV(*c);
    testAllReduce(*c);
    testAllGather(*c);
    if (!nccl)
      testSplit(*c);
    c->barrier();
    if (!single && !nccl) {
      bool threw = false;
      try {
        makeMPICollectives(c->size() + 1);
      } catch (const Error &e) {
        threw = std::string(e.what()).find("the launcher started " +
                                           std::to_string(c->size())) !=
                std::string::npos;
      }
      expect(threw, "a rank count other than the launcher's is an Error",
             c->rank());
    }
    std::printf("rank %d of %d (%s): %d checks, %d failed\n", c->rank(),
                c->size(), c->name().c_str(), checks, failures);
  } catch (const Error &e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return failures == 0 ? 0 : 1;
}
