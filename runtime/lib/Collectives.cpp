//===- Collectives.cpp - The collectives interface and one rank ---*- C++ -*-===//
//
// What every engine of moe/Runtime/Collectives.h shares (traffic counting),
// the single-rank engine that only copies, and the launcher check. The MPI
// engine is in MPICollectives.cpp, the NCCL one in NCCLCollectives.cpp.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/Collectives.h"
#include "moe/Runtime/Error.h"

#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>

namespace moe::runtime {

Collectives::~Collectives() = default;

std::unique_ptr<Collectives> Collectives::split(int /*color*/) {
  if (size() == 1)
    return makeSingleRankCollectives();
  throw Error("collectives: error: the " + name() +
              " engine cannot be split into groups");
}

void Collectives::count(const std::vector<size_t> &sent,
                        const std::vector<size_t> &received) {
  for (size_t peer = 0; peer < sent.size(); ++peer) {
    if (static_cast<int>(peer) == rank())
      continue;
    traffic.bytesSent += sent[peer];
    traffic.bytesReceived += received[peer];
  }
}

namespace {

//===----------------------------------------------------------------------===//
// Single rank
//===----------------------------------------------------------------------===//

class SingleRank final : public Collectives {
public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return "single"; }
  void allToAll(const void *send, void *recv, size_t chunkBytes) override {
    if (send != recv)
      std::memmove(recv, send, chunkBytes);
  }
  void allToAllV(const void *send, const std::vector<size_t> &sendBytes,
                 void *recv, const std::vector<size_t> &recvBytes) override {
    if (sendBytes.size() != 1 || recvBytes.size() != 1 ||
        sendBytes[0] != recvBytes[0])
      throw Error("collectives: error: single-rank allToAllV needs one "
                  "matching count");
    if (send != recv)
      std::memmove(recv, send, sendBytes[0]);
  }
  void allReduce(void *, size_t, DType, ReduceOp) override {}
  void allGather(const void *send, void *recv, size_t bytes) override {
    if (send != recv)
      std::memmove(recv, send, bytes);
  }
  void barrier() override {}
};

} // namespace

std::unique_ptr<Collectives> makeSingleRankCollectives() {
  return std::make_unique<SingleRank>();
}

bool launchedByMPI() {
  // Open MPI, MPICH/Hydra and PMIx launchers all export the world size.
  for (const char *var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(var))
      return true;
  return false;
}

} // namespace moe::runtime
