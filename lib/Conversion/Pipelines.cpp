//===- Pipelines.cpp - Named pass pipelines of the moe toolchain ----*- C++
//-*-===//
//
// `moe-cpu-pipeline`: from moe.layer to the LLVM dialect for the host CPU,
// as one documented list of our passes and upstream ones.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Pass/PassRegistry.h"

using namespace mlir;

std::string mlir::moe::cpuPipelineText(int64_t threads) {
  // Each line is one stage; see the README for what each does.
  return "canonicalize,"
         "moe-decompose{packed-capacity=1},"
         "canonicalize,"
         "convert-moe-to-linalg,"
         "convert-elementwise-to-linalg,"
         "canonicalize,cse,"
         "moe-vectorize-matmuls{threads=" +
         std::to_string(threads) +
         "},"
         "canonicalize,"
         "func.func(llvm-request-c-wrappers),"
         "one-shot-bufferize{bufferize-function-boundaries=1 "
         "function-boundary-type-conversion=identity-layout-map},"
         "buffer-results-to-out-params{modify-public-functions=1 "
         "hoist-static-allocs=1},"
         "buffer-deallocation-pipeline,"
         "scf-forall-to-parallel,"
         "convert-scf-to-openmp,"
         "convert-vector-to-scf{full-unroll=1},"
         "convert-linalg-to-loops,"
         "canonicalize,"
         "convert-scf-to-cf,"
         "expand-strided-metadata,"
         "lower-affine,"
         "arith-expand{include-bf16=1},"
         "convert-vector-to-llvm,"
         "convert-math-to-llvm,"
         "convert-math-to-libm,"
         "finalize-memref-to-llvm,"
         "convert-arith-to-llvm,"
         "convert-index-to-llvm,"
         "convert-cf-to-llvm,"
         "convert-func-to-llvm,"
         "convert-openmp-to-llvm,"
         "convert-ub-to-llvm,"
         "reconcile-unrealized-casts";
}

LogicalResult mlir::moe::buildCpuPipeline(OpPassManager &pm, int64_t threads) {
  return parsePassPipeline(cpuPipelineText(threads), pm, llvm::errs());
}

void mlir::moe::registerMoEPipelines() {
  PassPipelineRegistration<>(
      "moe-cpu-pipeline",
      "Lower moe.layer (or the decomposed moe ops) to the LLVM dialect for "
      "the host CPU, with C-interface functions taking results as out-params",
      [](OpPassManager &pm) {
        if (failed(buildCpuPipeline(pm)))
          llvm::report_fatal_error("moe-cpu-pipeline: invalid pipeline text");
      });
}
