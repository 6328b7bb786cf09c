//===- MoEToLinalg.cpp - The convert-moe-to-linalg pass -------------*- C++
//-*-===//
//
// Drives the moe lowering patterns with dialect conversion: every moe op is
// illegal afterwards. Exchanges between ranks become calls of the runtime's
// collective entry points.
//
//===----------------------------------------------------------------------===//

#include "Emitter.h"
#include "moe/Conversion/Passes.h"
#include "moe/IR/MoEOps.h"
#include "moe/Transforms/Passes.h"

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTMOETOLINALG
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

struct ConvertMoEToLinalgPass
    : mlir::moe::impl::ConvertMoEToLinalgBase<ConvertMoEToLinalgPass> {
  using ConvertMoEToLinalgBase::ConvertMoEToLinalgBase;
  void runOnOperation() override {
    Operation *root = getOperation();
    MLIRContext *context = &getContext();
    RewritePatternSet patterns(context);
    populateDecomposeLayerPatterns(patterns);
    lowering::populateLowerRoutingPatterns(patterns, cpuKernels);
    lowering::populateLowerExpertPatterns(patterns);
    lowering::populateLowerCollectivePatterns(patterns);
    lowering::populateLowerGroupedPatterns(patterns, cpuKernels);

    ConversionTarget target(*context);
    target.addIllegalDialect<MoEDialect>();
    if (cpuKernels)
      target.addLegalOp<GroupedMatmulOp>();
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
    if (failed(applyPartialConversion(root, target, std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
