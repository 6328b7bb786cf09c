//===- MoEToLinalg.cpp - The convert-moe-to-linalg pass -------------*- C++ -*-===//
//
// Drives the moe lowering patterns with dialect conversion: every moe op is
// illegal afterwards, and anything that cannot be lowered on one host (an
// exchange over several ranks) is reported at the op.
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
  void runOnOperation() override {
    Operation *root = getOperation();
    WalkResult multiRank = root->walk([](AllToAllOp op) {
      if (op.getRanks() == 1)
        return WalkResult::advance();
      op.emitOpError() << "exchanges buffers over " << op.getRanks()
                       << " ranks, which a single host process cannot run; "
                          "lower the sharded program with a collective "
                          "runtime instead";
      return WalkResult::interrupt();
    });
    if (multiRank.wasInterrupted())
      return signalPassFailure();

    MLIRContext *context = &getContext();
    RewritePatternSet patterns(context);
    populateDecomposeLayerPatterns(patterns);
    lowering::populateLowerRoutingPatterns(patterns);
    lowering::populateLowerExpertPatterns(patterns);

    ConversionTarget target(*context);
    target.addIllegalDialect<MoEDialect>();
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
    if (failed(applyPartialConversion(root, target, std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
