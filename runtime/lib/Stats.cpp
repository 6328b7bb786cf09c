//===- Stats.cpp - The per-call statistics of a layer ---------------------===//
//
// The JSON form of `LayerStats`.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/Stats.h"

#include <nlohmann/json.hpp>

using namespace moe::runtime;

std::string moe::runtime::statsToJSON(const LayerStats &stats) {
  nlohmann::ordered_json json = nlohmann::ordered_json::object();
  if (stats.capacity)
    json["capacity"] = *stats.capacity;
  else
    json["capacity"] = nullptr;
  json["tokens_per_expert"] = stats.tokensPerExpert;
  json["dropped"] = stats.dropped;
  json["load_balance_loss"] = stats.loadBalanceLoss;
  json["router_z_loss"] = stats.routerZLoss;
  return json.dump(2) + "\n";
}
