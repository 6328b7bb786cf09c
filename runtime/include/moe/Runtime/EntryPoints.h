//===- EntryPoints.h - C entry points that compiled layers call ---*- C++
//-*-===//
//
// Compiled sharded layers exchange expert buffers and sum statistics by
// calling these functions (the C interface of MLIR unranked memrefs). They
// run on the collectives engine made active with setActiveCollectives.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_ENTRYPOINTS_H
#define MOE_RUNTIME_ENTRYPOINTS_H

#include "moe/Runtime/Collectives.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace moe::runtime {

/// The engine the entry points use; null (the default) makes every call
/// fail. With data-parallel replicas, `group` is this rank's expert-parallel
/// group: exchanges over as many ranks as it has go through it, the others
/// (the statistics) through `collectives`. The caller keeps ownership.
void setActiveCollectives(Collectives *collectives,
                          Collectives *group = nullptr);

/// Where the entry points put their staging buffers when the active engine
/// needs device-reachable memory (NCCL): the CUDA backend's pool. Without
/// it such an engine makes every exchange fail.
void setDeviceStaging(void *(*allocate)(size_t), void (*release)(void *));

/// The entry points by symbol name (`_mlir_ciface_moe_rt_...`, and
/// `moe_rt_check_failed(const char *message)`, which compiled runtime
/// checks call: it prints `moe_rt: error: runtime check failed: <message>`
/// on one line and ends the process with status 3) and address, for a JIT
/// to resolve.
std::vector<std::pair<std::string, void *>> collectiveEntryPoints();

} // namespace moe::runtime

#endif // MOE_RUNTIME_ENTRYPOINTS_H
