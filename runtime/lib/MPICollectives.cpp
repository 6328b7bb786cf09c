//===- MPICollectives.cpp - The MPI collective engine --------------*- C++ -*-===//
//
// The MPI engine of moe/Runtime/Collectives.h: one process per rank over
// MPI_COMM_WORLD, host buffers, every call checked and reported by name.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/Collectives.h"
#include "moe/Runtime/Error.h"

// The C API only: no MPI C++ bindings.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <exception>

#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>

namespace moe::runtime {
namespace {

//===----------------------------------------------------------------------===//
// MPI
//===----------------------------------------------------------------------===//

/// Throws an Error naming the MPI call when `code` is not MPI_SUCCESS.
void check(int code, const char *call) {
  if (code == MPI_SUCCESS)
    return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw Error(std::string("mpi: error: ") + call +
              " failed: " + std::string(text, static_cast<size_t>(length)));
}

/// MPI counts are ints: larger messages are refused rather than truncated.
int toCount(size_t bytes, const char *call) {
  if (bytes > static_cast<size_t>(std::numeric_limits<int>::max()))
    throw Error(std::string("mpi: error: ") + call + ": " +
                std::to_string(bytes) +
                " bytes exceed the 2 GiB limit of one MPI message");
  return static_cast<int>(bytes);
}

MPI_Datatype mpiType(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return MPI_FLOAT;
  case DType::F64:
    return MPI_DOUBLE;
  case DType::I64:
    return MPI_INT64_T;
  case DType::I32:
    return MPI_INT32_T;
  default:
    throw Error("mpi: error: allReduce does not support " +
                std::string(dtypeName(dtype)) + " elements");
  }
}

/// Live MPI engines; MPI is finalised when the last one goes.
int liveEngines = 0;

class MPIEngine final : public Collectives {
public:
  /// The engine over MPI_COMM_WORLD, or over `group` (which it then owns).
  explicit MPIEngine(MPI_Comm group = MPI_COMM_NULL) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized)
      check(MPI_Init(nullptr, nullptr), "MPI_Init");
    comm = group == MPI_COMM_NULL ? MPI_COMM_WORLD : group;
    // Report failures instead of aborting the job.
    check(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN),
          "MPI_Comm_set_errhandler");
    check(MPI_Comm_rank(comm, &myRank), "MPI_Comm_rank");
    check(MPI_Comm_size(comm, &worldSize), "MPI_Comm_size");
    ++liveEngines;
  }
  ~MPIEngine() override {
    bool last = --liveEngines == 0;
    // A rank leaving on an error does not wait for the others in
    // MPI_Finalize (they may be waiting for it in an exchange): it reports
    // and exits, and the launcher ends the job.
    if (std::uncaught_exceptions() > 0)
      return;
    if (comm != MPI_COMM_WORLD)
      MPI_Comm_free(&comm);
    if (last) {
      int finalized = 0;
      MPI_Finalized(&finalized);
      if (!finalized)
        MPI_Finalize();
    }
  }

  int rank() const override { return myRank; }
  int size() const override { return worldSize; }
  std::string name() const override { return "mpi"; }

  void allToAll(const void *send, void *recv, size_t chunkBytes) override {
    int n = toCount(chunkBytes, "MPI_Alltoall");
    check(MPI_Alltoall(send, n, MPI_BYTE, recv, n, MPI_BYTE, comm),
          "MPI_Alltoall");
    std::vector<size_t> each(static_cast<size_t>(worldSize), chunkBytes);
    count(each, each);
  }

  void allToAllV(const void *send, const std::vector<size_t> &sendBytes,
                 void *recv, const std::vector<size_t> &recvBytes) override {
    auto ranks = static_cast<size_t>(worldSize);
    if (sendBytes.size() != ranks || recvBytes.size() != ranks)
      throw Error("mpi: error: MPI_Alltoallv needs one count per rank (" +
                  std::to_string(worldSize) + ")");
    std::vector<int> sc(ranks), sd(ranks), rc(ranks), rd(ranks);
    size_t so = 0, ro = 0;
    for (size_t i = 0; i < ranks; ++i) {
      sc[i] = toCount(sendBytes[i], "MPI_Alltoallv");
      rc[i] = toCount(recvBytes[i], "MPI_Alltoallv");
      sd[i] = toCount(so, "MPI_Alltoallv");
      rd[i] = toCount(ro, "MPI_Alltoallv");
      so += sendBytes[i];
      ro += recvBytes[i];
    }
    check(MPI_Alltoallv(send, sc.data(), sd.data(), MPI_BYTE, recv, rc.data(),
                        rd.data(), MPI_BYTE, comm),
          "MPI_Alltoallv");
    count(sendBytes, recvBytes);
  }

  void allReduce(void *data, size_t count, DType dtype, ReduceOp op) override {
    check(MPI_Allreduce(MPI_IN_PLACE, data, toCount(count, "MPI_Allreduce"),
                        mpiType(dtype), op == ReduceOp::Sum ? MPI_SUM : MPI_MAX,
                        comm),
          "MPI_Allreduce");
  }

  void allGather(const void *send, void *recv, size_t bytes) override {
    int n = toCount(bytes, "MPI_Allgather");
    check(MPI_Allgather(send, n, MPI_BYTE, recv, n, MPI_BYTE, comm),
          "MPI_Allgather");
    std::vector<size_t> each(static_cast<size_t>(worldSize), bytes);
    count(each, each);
  }

  void barrier() override { check(MPI_Barrier(comm), "MPI_Barrier"); }

  std::unique_ptr<Collectives> split(int color) override {
    MPI_Comm group = MPI_COMM_NULL;
    check(MPI_Comm_split(comm, color, myRank, &group), "MPI_Comm_split");
    return std::make_unique<MPIEngine>(group);
  }

private:
  MPI_Comm comm = MPI_COMM_WORLD;
  int myRank = 0;
  int worldSize = 1;
};

} // namespace

bool haveMPI() { return true; }

std::unique_ptr<Collectives> makeMPICollectives(int expectedRanks) {
  auto engine = std::make_unique<MPIEngine>();
  if (expectedRanks > 0 && engine->size() != expectedRanks)
    throw Error("mpi: error: " + std::to_string(expectedRanks) +
                " ranks were asked for but the launcher started " +
                std::to_string(engine->size()) + " (mpirun -np " +
                std::to_string(expectedRanks) + ")");
  return engine;
}

} // namespace moe::runtime
