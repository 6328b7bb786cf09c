//===- NCCLUnavailable.cpp - Stand-in for a build without NCCL ------------===//
//
// Compiled instead of NCCLCollectives.cpp where CUDA or NCCL was not found at
// configure time (or MOE_ENABLE_NCCL is off): the NCCL engine reports that it
// is missing.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/Collectives.h"
#include "moe/Runtime/Error.h"

using namespace moe::runtime;

bool moe::runtime::haveNCCL() { return false; }

std::unique_ptr<Collectives>
moe::runtime::makeNCCLCollectives(Collectives & /*bootstrap*/, int /*device*/) {
  throw Error("nccl: error: this build has no NCCL engine (CUDA and NCCL "
              "were not found at configure time)");
}
