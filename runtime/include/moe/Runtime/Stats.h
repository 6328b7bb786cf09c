//===- Stats.h - The per-call statistics of a layer -------------*- C++ -*-===//
//
// The statistics every backend reports for one call of a layer (spec §4)
// and their JSON form. `writeTextFileAtomically` (FileIO.h) writes that
// JSON without ever leaving a half-written file.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_STATS_H
#define MOE_RUNTIME_STATS_H

#include "moe/Runtime/FileIO.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace moe::runtime {

/// The statistics of one call (spec §4).
struct LayerStats {
  /// Capacity C per group; absent when the layer is dropless.
  std::optional<int64_t> capacity;
  /// [E] kept assignments per expert, summed over groups.
  std::vector<int64_t> tokensPerExpert;
  /// Dropped (token, choice) assignments.
  int64_t dropped = 0;
  /// Mean over groups of E * sum_e f_e * P_e (1.0 when balanced).
  double loadBalanceLoss = 0.0;
  /// Mean over tokens of logsumexp(logits)^2.
  double routerZLoss = 0.0;
};

/// The statistics as a two-space-indented JSON object with exactly the keys
/// of spec §4, in its order: `capacity` (null when dropless),
/// `tokens_per_expert`, `dropped`, `load_balance_loss`, `router_z_loss`.
/// Ends with a newline.
std::string statsToJSON(const LayerStats &stats);

} // namespace moe::runtime

#endif // MOE_RUNTIME_STATS_H
