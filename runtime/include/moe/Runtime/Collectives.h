//===- Collectives.h - Collective communication between ranks ---*- C++ -*-===//
//
// One interface over the engines that move expert buffers between the ranks
// of an expert-parallel layer: a single-rank engine (no communication), MPI
// (one process per rank, host buffers) and NCCL (GPU buffers, built where
// CUDA and NCCL are installed). Every failing engine call throws
// moe::runtime::Error naming the call and the engine's error string.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_COLLECTIVES_H
#define MOE_RUNTIME_COLLECTIVES_H

#include "moe/Runtime/Tensor.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace moe::runtime {

/// Element-wise reduction of allReduce.
enum class ReduceOp { Sum, Max };

/// Bytes this rank has sent to and received from other ranks (its own chunk
/// of an exchange does not count), for the communication report.
struct CommCounters {
  uint64_t bytesSent = 0;
  uint64_t bytesReceived = 0;
};

class Collectives {
public:
  virtual ~Collectives();

  /// This process's rank in [0, size()).
  virtual int rank() const = 0;
  /// The number of ranks.
  virtual int size() const = 0;
  /// The engine: "single", "mpi" or "nccl".
  virtual std::string name() const = 0;

  /// Equal-size exchange: `send` holds size() consecutive chunks of
  /// `chunkBytes`; chunk i goes to rank i, and the chunk from rank i lands
  /// at offset i·chunkBytes of `recv`.
  virtual void allToAll(const void *send, void *recv, size_t chunkBytes) = 0;

  /// Variable-size exchange: `sendBytes[i]` bytes, packed in rank order in
  /// `send`, go to rank i; `recvBytes[i]` bytes from rank i land packed in
  /// rank order in `recv`. The sizes must agree pairwise across ranks
  /// (exchange the counts first with allToAll).
  virtual void allToAllV(const void *send, const std::vector<size_t> &sendBytes,
                         void *recv, const std::vector<size_t> &recvBytes) = 0;

  /// In-place reduction of `count` elements of `dtype` (F32, F64, I64, I32)
  /// over all ranks.
  virtual void allReduce(void *data, size_t count, DType dtype,
                         ReduceOp op) = 0;

  /// Every rank contributes `bytes`; `recv` receives size()·bytes in rank
  /// order.
  virtual void allGather(const void *send, void *recv, size_t bytes) = 0;

  virtual void barrier() = 0;

  /// The engine over the ranks of the same `color` (ordered by rank), for
  /// data-parallel replicas of an expert-parallel group. Collective: every
  /// rank calls it. Throws Error for engines that cannot split.
  virtual std::unique_ptr<Collectives> split(int color);

  /// True when the buffers of every call must be reachable from the GPU
  /// (NCCL); host memory is fine otherwise.
  virtual bool needsDeviceBuffers() const { return false; }

  const CommCounters &counters() const { return traffic; }

protected:
  /// Adds an exchange's traffic to the counters, excluding own chunk.
  void count(const std::vector<size_t> &sent,
             const std::vector<size_t> &received);

  CommCounters traffic;
};

/// One rank, no communication: exchanges copy `send` to `recv`.
std::unique_ptr<Collectives> makeSingleRankCollectives();

/// True when this build has the MPI engine.
bool haveMPI();

/// Initialises MPI (once per process) and returns the engine over
/// MPI_COMM_WORLD; rank and size come from the launcher (mpirun).
/// `expectedRanks` > 0 must equal the launcher's world size, otherwise it
/// throws an Error saying so. Finalises MPI when the last engine goes.
std::unique_ptr<Collectives> makeMPICollectives(int expectedRanks = 0);

/// True when this process was started by an MPI launcher (its environment
/// carries a world size), so that MPI can be initialised without hanging.
bool launchedByMPI();

/// True when this build has the NCCL engine.
bool haveNCCL();

/// The NCCL engine over the same ranks as `bootstrap` (typically the MPI
/// engine), on CUDA device `device`: rank 0 creates the ncclUniqueId and
/// `bootstrap.allGather`/broadcast shares it, then ncclCommInitRank. Buffers
/// passed to its calls are device pointers; calls are enqueued on an internal
/// CUDA stream and synchronized before returning. Throws Error when NCCL is
/// not built in or any CUDA/NCCL call fails (message:
/// `nccl: ncclAllToAll... failed: <ncclGetErrorString>` /
/// `cuda: cudaStreamCreate failed: <cudaGetErrorString>`).
std::unique_ptr<Collectives> makeNCCLCollectives(Collectives &bootstrap,
                                                 int device);

} // namespace moe::runtime

#endif // MOE_RUNTIME_COLLECTIVES_H
