//===- Import.h - Layer specs and HF configs into moe IR -------*- C++ -*-===//
//
// Builds a module holding one function around `moe.layer` from a layer spec,
// and registers the moe-translate imports of layer-spec JSON and Hugging Face
// config.json files.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_IMPORT_IMPORT_H
#define MOE_IMPORT_IMPORT_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "moe/Spec/LayerSpec.h"

namespace mlir::moe {

/// Element types the importer can give activations and weights.
enum class ElementKind { F32, BF16, F16 };

/// What the spec itself does not say: the call's shape and types.
struct ImportOptions {
  /// T, the number of tokens of one call.
  int64_t tokens = 1024;
  ElementKind activationType = ElementKind::F32;
  ElementKind weightType = ElementKind::F32;
  /// The router's element type; unset means `weightType`.
  std::optional<ElementKind> routerType;
  std::string funcName = "moe_layer";
};

/// Builds `func.func @<funcName>(%input, %router, [%score_bias,] %w_in,
/// [%w_gate,] %w_out, [%shared_w_in, [%shared_w_gate,] %shared_w_out,
/// [%shared_gate]])` (the operand order of `moe.layer`; the bracketed ones
/// as the spec's §8 fields ask) returning the five results of the
/// `moe.layer` it wraps. The spec must
/// already have passed `::moe::spec::checkTokens` for `options.tokens`.
OwningOpRef<ModuleOp> buildLayerModule(MLIRContext *context,
                                       const ::moe::spec::LayerSpec &spec,
                                       const ImportOptions &options,
                                       Location loc);

/// Registers `--import-moe-spec` and `--import-hf-config` with
/// mlir-translate's registry, and their options (`--tokens`, `--act-dtype`,
/// `--weight-dtype`, `--func-name`, `--seq-len`).
void registerImportTranslations();

} // namespace mlir::moe

#endif // MOE_IMPORT_IMPORT_H
