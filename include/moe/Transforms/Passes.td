//===- Passes.td - Passes of the moe toolchain --------------*- tablegen -*-===//
//
// Declarations of the moe passes; options live here, code in lib/Transforms.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TRANSFORMS_PASSES_TD
#define MOE_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def MoEDecompose : Pass<"moe-decompose"> {
  let summary = "Rewrite moe.layer into the decomposed moe ops";
  let description = [{
    Replaces every `moe.layer` by the steps of the layer contract:
    `moe.route` → `moe.top_k` → `moe.assign_slots` → `moe.dispatch` →
    `moe.expert_ffn` → `moe.combine`, plus `moe.load_balance_loss`,
    `moe.router_z_loss` and `moe.count_dropped` for the statistics.

    A layer with a capacity C uses padded expert buffers [E, G·C', D] where
    C' = min(C, S) (an expert never receives more than S assignments of one
    group, so rows past S could never be filled). A dropless layer uses a
    packed buffer [T·k, D] sorted by expert, and passes the per-expert counts
    to `moe.expert_ffn`.

    Example: `moe-opt --moe-decompose layer.mlir`.
  }];
  let dependentDialects = ["::mlir::moe::MoEDialect"];
}

#endif // MOE_TRANSFORMS_PASSES_TD
