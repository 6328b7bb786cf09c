//===- DialectFuzzer.cpp - libFuzzer target: moe IR, verifier, decompose -===//
//
// Any text as an MLIR module with the moe dialect (and func, arith, tensor):
// parse, verify, canonicalize and run --moe-decompose and --moe-fuse-experts
// on what verifies. Diagnostics are swallowed; a crash, an assertion or a
// sanitizer report in our dialect's parser, verifiers, folders or passes is
// a bug.
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoEDialect.h"
#include "moe/IR/MoEOps.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static DialectRegistry *registry = [] {
    auto *r = new DialectRegistry();
    r->insert<moe::MoEDialect, func::FuncDialect, arith::ArithDialect,
              tensor::TensorDialect>();
    return r;
  }();
  MLIRContext context(*registry, MLIRContext::Threading::DISABLED);
  context.loadAllAvailableDialects();
  ScopedDiagnosticHandler quiet(&context,
                                [](Diagnostic &) { return success(); });
  // The MLIR lexer reads a null-terminated buffer, as every file it is given
  // is: a std::string supplies the terminator the fuzzer's bytes lack.
  std::string text(reinterpret_cast<const char *>(data), size);
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(text, &context);
  if (!module || failed(verify(*module)))
    return 0;
  PassManager pm(&context);
  pm.addPass(createCanonicalizerPass());
  pm.addPass(moe::createMoEDecompose());
  pm.addPass(moe::createMoEFuseExperts());
  pm.addPass(createCanonicalizerPass());
  (void)pm.run(*module);
  return 0;
}
