//===- CollectivesTest.cpp - The collective engines under mpirun ---*- C++
//-*-===//
//
// Run as `mpirun -np N moe-collectives-test` (MPI engine over N ranks) or
// `moe-collectives-test --single`. Each exchange is checked element by
// element on every rank; any mismatch prints what differed and exits 1.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/Collectives.h"
#include "moe/Runtime/Error.h"

#include <cstdio>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

using namespace moe::runtime;

namespace {

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
  std::vector<int32_t> send(per * n), recv(per * n, -1);
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
  std::vector<int64_t> send;
  for (int peer = 0; peer < n; ++peer) {
    sendBytes[peer] = size_t(r + peer + 1) * sizeof(int64_t);
    recvBytes[peer] = size_t(peer + r + 1) * sizeof(int64_t);
    for (int j = 0; j < r + peer + 1; ++j)
      send.push_back(r * 1000 + peer * 10 + j);
  }
  size_t total = std::accumulate(recvBytes.begin(), recvBytes.end(), size_t(0));
  std::vector<int64_t> recv(total / sizeof(int64_t), -1);
  c.allToAllV(send.data(), sendBytes, recv.data(), recvBytes);
  bool ok = true;
  size_t at = 0;
  for (int peer = 0; peer < n; ++peer)
    for (int j = 0; j < peer + r + 1; ++j)
      ok &= recv[at++] == peer * 1000 + r * 10 + j;
  expect(ok, "allToAllV delivers variable-size blocks in rank order", r);
}

void testAllReduce(Collectives &c) {
  int n = c.size(), r = c.rank();
  std::vector<double> d{double(r), 1.5};
  c.allReduce(d.data(), d.size(), DType::F64, ReduceOp::Sum);
  expect(d[0] == n * (n - 1) / 2.0 && d[1] == 1.5 * n, "allReduce f64 sum", r);
  std::vector<int64_t> i{r, -r};
  c.allReduce(i.data(), i.size(), DType::I64, ReduceOp::Max);
  expect(i[0] == n - 1 && i[1] == 0, "allReduce i64 max", r);
  float f = 0.25f;
  c.allReduce(&f, 1, DType::F32, ReduceOp::Sum);
  expect(f == 0.25f * n, "allReduce f32 sum", r);
  bool threw = false;
  try {
    uint16_t h = 0;
    c.allReduce(&h, 1, DType::BF16, ReduceOp::Sum);
  } catch (const Error &) {
    threw = true;
  }
  expect(threw || n == 1, "allReduce rejects bf16 with an Error", r);
}

void testAllGather(Collectives &c) {
  int n = c.size(), r = c.rank();
  int32_t mine[2] = {r, r * r};
  std::vector<int32_t> all(2 * n, -1);
  c.allGather(mine, all.data(), sizeof(mine));
  bool ok = true;
  for (int p = 0; p < n; ++p)
    ok &= all[2 * p] == p && all[2 * p + 1] == p * p;
  expect(ok, "allGather collects every rank's block in rank order", r);
}

} // namespace

int main(int argc, char **argv) {
  bool single = argc > 1 && std::strcmp(argv[1], "--single") == 0;
  try {
    std::unique_ptr<Collectives> c =
        single ? makeSingleRankCollectives() : makeMPICollectives();
    testAllToAll(*c);
    testAllToAllV(*c);
    testAllReduce(*c);
    testAllGather(*c);
    c->barrier();
    if (!single) {
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
