//===- MPIUnavailable.cpp - Stand-in for the MPI engine -----------*- C++ -*-===//
//
// Linked instead of MPICollectives.cpp into MoERuntimeCore, the runtime of
// programs that must not depend on an MPI library (moe-gpu-run): the engine
// reports that it is missing.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/Collectives.h"
#include "moe/Runtime/Error.h"

bool moe::runtime::haveMPI() { return false; }

std::unique_ptr<moe::runtime::Collectives>
moe::runtime::makeMPICollectives(int /*expectedRanks*/) {
  throw Error("mpi: error: this program is built without MPI (run sharded "
              "layers with moe-run)");
}
