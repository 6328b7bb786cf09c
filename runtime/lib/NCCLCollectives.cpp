//===- NCCLCollectives.cpp - The NCCL engine of the collectives -----------===//
//
// Collectives over GPU buffers with NCCL. The ranks are those of a bootstrap
// engine (usually MPI) that shares rank 0's ncclUniqueId before every rank
// joins the communicator. Each call enqueues its NCCL operations on the
// engine's own CUDA stream and waits for that stream before returning, so
// callers see the same blocking semantics as the host engines. As with the
// MPI engine, the exchanges (allToAll, allToAllV) feed the traffic counters.
// Built only where CUDA and NCCL were found at configure time;
// NCCLUnavailable.cpp stands in elsewhere.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/Collectives.h"
#include "moe/Runtime/Error.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstring>
#include <optional>
#include <string>

using namespace moe::runtime;

namespace {

/// The message of a failed CUDA runtime call, `cuda: <call> failed: <why>`.
std::string cudaFailure(const char *call, cudaError_t status) {
  return std::string("cuda: error: ") + call +
         " failed: " + cudaGetErrorString(status);
}

/// The message of a failed NCCL call, `nccl: <call> failed: <why>`.
std::string ncclFailure(const char *call, ncclResult_t status) {
  return std::string("nccl: error: ") + call +
         " failed: " + ncclGetErrorString(status);
}

/// Throws an Error naming `call` unless `status` is cudaSuccess.
void checkCuda(cudaError_t status, const char *call) {
  if (status != cudaSuccess)
    throw Error(cudaFailure(call, status));
}

/// Throws an Error naming `call` unless `status` is ncclSuccess.
void checkNccl(ncclResult_t status, const char *call) {
  if (status != ncclSuccess)
    throw Error(ncclFailure(call, status));
}

/// Collects the NCCL calls of one ncclGroupStart/ncclGroupEnd bracket. A
/// failing call inside the group is remembered rather than thrown, so that
/// the group is always closed; `end` closes it and then reports the first
/// failure.
class NcclGroup {
public:
  NcclGroup() { checkNccl(ncclGroupStart(), "ncclGroupStart"); }
  NcclGroup(const NcclGroup &) = delete;
  NcclGroup &operator=(const NcclGroup &) = delete;
  /// Closes a group that `end` did not close (an exception escaped).
  ~NcclGroup() {
    if (open)
      (void)ncclGroupEnd();
  }

  /// Records the outcome of one call inside the group.
  void add(ncclResult_t status, const char *call) {
    if (status != ncclSuccess && !failure)
      failure = ncclFailure(call, status);
  }

  /// Closes the group; throws the first failure of the group, if any.
  void end() {
    open = false;
    ncclResult_t status = ncclGroupEnd();
    if (failure)
      throw Error(*failure);
    checkNccl(status, "ncclGroupEnd");
  }

private:
  bool open = true;
  std::optional<std::string> failure;
};

/// Makes `device` current for one call and restores the caller's device
/// afterwards, so the engine does not leak its device choice to the caller.
class DeviceScope {
public:
  explicit DeviceScope(int device) {
    checkCuda(cudaGetDevice(&previous), "cudaGetDevice");
    if (previous != device)
      checkCuda(cudaSetDevice(device), "cudaSetDevice");
    else
      previous = -1;
  }
  DeviceScope(const DeviceScope &) = delete;
  DeviceScope &operator=(const DeviceScope &) = delete;
  ~DeviceScope() {
    if (previous >= 0)
      (void)cudaSetDevice(previous);
  }

private:
  /// The device to restore, or -1 when it was already current.
  int previous = -1;
};

/// The NCCL data type of a reducible DType; throws for the others.
ncclDataType_t ncclTypeOf(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return ncclFloat32;
  case DType::F64:
    return ncclFloat64;
  case DType::I64:
    return ncclInt64;
  case DType::I32:
    return ncclInt32;
  default:
    throw Error("nccl: error: allReduce does not support " +
                std::string(dtypeName(dtype)) +
                " elements (only f32, f64, i64 and i32)");
  }
}

/// The NCCL reduction of a ReduceOp.
ncclRedOp_t ncclOpOf(ReduceOp op) {
  return op == ReduceOp::Max ? ncclMax : ncclSum;
}

/// What one rank reports to the others while the communicator is set up:
/// whether its local CUDA setup succeeded and, on rank 0, the unique id.
struct SetupRecord {
  int32_t ok;
  ncclUniqueId id;
};

class NCCLCollectives final : public Collectives {
public:
  NCCLCollectives(int rank, int size, int device)
      : rankIndex(rank), rankCount(size), device(device) {}
  NCCLCollectives(const NCCLCollectives &) = delete;
  NCCLCollectives &operator=(const NCCLCollectives &) = delete;
  ~NCCLCollectives() override;

  /// Sets up the device, the stream and the communicator; collective over
  /// the ranks of `bootstrap`. A failure leaves this engine safe to destroy.
  void init(Collectives &bootstrap);

  int rank() const override { return rankIndex; }
  int size() const override { return rankCount; }
  std::string name() const override { return "nccl"; }
  bool needsDeviceBuffers() const override { return true; }

  void allToAll(const void *send, void *recv, size_t chunkBytes) override;
  void allToAllV(const void *send, const std::vector<size_t> &sendBytes,
                 void *recv, const std::vector<size_t> &recvBytes) override;
  void allReduce(void *data, size_t elements, DType dtype,
                 ReduceOp op) override;
  void allGather(const void *send, void *recv, size_t bytes) override;
  void barrier() override;

private:
  /// Waits for everything enqueued on the engine's stream.
  void synchronize() {
    checkCuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  }

  /// Copies this rank's own chunk of an exchange on the stream; it does not
  /// go through NCCL.
  void copyOwn(const char *from, char *to, size_t bytes) {
    if (bytes == 0 || from == to)
      return;
    checkCuda(
        cudaMemcpyAsync(to, from, bytes, cudaMemcpyDeviceToDevice, stream),
        "cudaMemcpyAsync");
  }

  int rankIndex;
  int rankCount;
  int device;
  cudaStream_t stream = nullptr;
  ncclComm_t comm = nullptr;
  /// One device int32 that barrier() reduces.
  int32_t *barrierCell = nullptr;
};

NCCLCollectives::~NCCLCollectives() {
  // Errors cannot be reported from a destructor; release what exists.
  int previous = -1;
  if (cudaGetDevice(&previous) != cudaSuccess ||
      cudaSetDevice(device) != cudaSuccess)
    return;
  if (comm)
    (void)ncclCommDestroy(comm);
  if (barrierCell)
    (void)cudaFree(barrierCell);
  if (stream)
    (void)cudaStreamDestroy(stream);
  if (previous != device)
    (void)cudaSetDevice(previous);
}

void NCCLCollectives::init(Collectives &bootstrap) {
  // Local setup first, with failures held back: a rank that threw here would
  // leave the others waiting in the bootstrap exchange for ever.
  SetupRecord mine;
  std::memset(&mine, 0, sizeof(mine));
  std::optional<std::string> localFailure;
  try {
    checkCuda(cudaSetDevice(device), "cudaSetDevice");
    checkCuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking),
              "cudaStreamCreate");
    void *cell = nullptr;
    checkCuda(cudaMalloc(&cell, sizeof(int32_t)), "cudaMalloc");
    barrierCell = static_cast<int32_t *>(cell);
    checkCuda(cudaMemset(barrierCell, 0, sizeof(int32_t)), "cudaMemset");
    if (rankIndex == 0)
      checkNccl(ncclGetUniqueId(&mine.id), "ncclGetUniqueId");
    mine.ok = 1;
  } catch (const Error &error) {
    localFailure = error.what();
  }

  std::vector<SetupRecord> all(static_cast<size_t>(rankCount));
  bootstrap.allGather(&mine, all.data(), sizeof(SetupRecord));
  if (localFailure)
    throw Error(*localFailure);
  for (int peer = 0; peer < rankCount; ++peer)
    if (!all[static_cast<size_t>(peer)].ok)
      throw Error("nccl: error: rank " + std::to_string(peer) +
                  " failed to set up its CUDA device");

  checkNccl(ncclCommInitRank(&comm, rankCount, all[0].id, rankIndex),
            "ncclCommInitRank");
}

void NCCLCollectives::allToAll(const void *send, void *recv,
                               size_t chunkBytes) {
  std::vector<size_t> bytes(static_cast<size_t>(rankCount), chunkBytes);
  if (chunkBytes != 0) {
    DeviceScope scope(device);
    const char *from = static_cast<const char *>(send);
    char *to = static_cast<char *>(recv);
    NcclGroup group;
    for (int peer = 0; peer < rankCount; ++peer) {
      size_t offset = static_cast<size_t>(peer) * chunkBytes;
      if (peer == rankIndex)
        continue;
      group.add(
          ncclSend(from + offset, chunkBytes, ncclInt8, peer, comm, stream),
          "ncclSend");
      group.add(ncclRecv(to + offset, chunkBytes, ncclInt8, peer, comm, stream),
                "ncclRecv");
    }
    group.end();
    size_t own = static_cast<size_t>(rankIndex) * chunkBytes;
    copyOwn(from + own, to + own, chunkBytes);
    synchronize();
  }
  count(bytes, bytes);
}

void NCCLCollectives::allToAllV(const void *send,
                                const std::vector<size_t> &sendBytes,
                                void *recv,
                                const std::vector<size_t> &recvBytes) {
  size_t ranks = static_cast<size_t>(rankCount);
  if (sendBytes.size() != ranks || recvBytes.size() != ranks)
    throw Error("nccl: error: allToAllV needs " + std::to_string(ranks) +
                " send and receive counts, got " +
                std::to_string(sendBytes.size()) + " and " +
                std::to_string(recvBytes.size()));
  size_t self = static_cast<size_t>(rankIndex);
  if (sendBytes[self] != recvBytes[self])
    throw Error("nccl: error: allToAllV sends " +
                std::to_string(sendBytes[self]) +
                " bytes to its own rank but expects " +
                std::to_string(recvBytes[self]));

  DeviceScope scope(device);
  const char *from = static_cast<const char *>(send);
  char *to = static_cast<char *>(recv);
  size_t sendOffset = 0, recvOffset = 0;
  size_t ownSend = 0, ownRecv = 0;
  {
    NcclGroup group;
    for (size_t peer = 0; peer < ranks; ++peer) {
      if (peer == self) {
        ownSend = sendOffset;
        ownRecv = recvOffset;
      } else {
        // The counts agree pairwise, so both sides skip an empty transfer.
        if (sendBytes[peer] != 0)
          group.add(ncclSend(from + sendOffset, sendBytes[peer], ncclInt8,
                             static_cast<int>(peer), comm, stream),
                    "ncclSend");
        if (recvBytes[peer] != 0)
          group.add(ncclRecv(to + recvOffset, recvBytes[peer], ncclInt8,
                             static_cast<int>(peer), comm, stream),
                    "ncclRecv");
      }
      sendOffset += sendBytes[peer];
      recvOffset += recvBytes[peer];
    }
    group.end();
  }
  copyOwn(from + ownSend, to + ownRecv, sendBytes[self]);
  synchronize();
  count(sendBytes, recvBytes);
}

void NCCLCollectives::allReduce(void *data, size_t elements, DType dtype,
                                ReduceOp op) {
  ncclDataType_t type = ncclTypeOf(dtype);
  if (elements != 0) {
    DeviceScope scope(device);
    checkNccl(
        ncclAllReduce(data, data, elements, type, ncclOpOf(op), comm, stream),
        "ncclAllReduce");
    synchronize();
  }
}

void NCCLCollectives::allGather(const void *send, void *recv, size_t bytes) {
  if (bytes != 0) {
    DeviceScope scope(device);
    checkNccl(ncclAllGather(send, recv, bytes, ncclInt8, comm, stream),
              "ncclAllGather");
    synchronize();
  }
}

void NCCLCollectives::barrier() {
  DeviceScope scope(device);
  checkNccl(ncclAllReduce(barrierCell, barrierCell, 1, ncclInt32, ncclSum, comm,
                          stream),
            "ncclAllReduce");
  synchronize();
}

} // namespace

bool moe::runtime::haveNCCL() { return true; }

std::unique_ptr<Collectives>
moe::runtime::makeNCCLCollectives(Collectives &bootstrap, int device) {
  auto engine = std::make_unique<NCCLCollectives>(bootstrap.rank(),
                                                  bootstrap.size(), device);
  engine->init(bootstrap);
  return engine;
}
