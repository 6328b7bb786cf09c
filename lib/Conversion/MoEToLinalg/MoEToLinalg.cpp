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
    lowering::populateLowerRoutingPatterns(patterns, cpuKernels,
                                           runtimeChecks, parallelLoops);
    lowering::populateLowerExpertPatterns(patterns, runtimeChecks);
    lowering::populateLowerCollectivePatterns(patterns);
    lowering::populateLowerGroupedPatterns(patterns, cpuKernels,
                                           runtimeChecks, parallelLoops);

    ConversionTarget target(*context);
    target.addIllegalDialect<MoEDialect>();
    // The buffer form is lowered after bufferization
    // (moe-grouped-matmul-to-gpu).
    target.addLegalOp<GroupedMatmulBuffersOp, PlaceRowsBuffersOp>();
    if (cpuKernels)
      target.addLegalOp<GroupedMatmulOp>();
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
    if (failed(applyPartialConversion(root, target, std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

std::string mlir::moe::lowering::checkMessage(bool enabled, Operation *op,
                                              const Twine &what) {
  if (!enabled)
    return "";
  // The innermost file location, as file:line:col.
  std::string where;
  op->getLoc()->walk([&](Location loc) {
    if (auto file = dyn_cast<FileLineColLoc>(loc)) {
      where = (file.getFilename().getValue() + ":" +
               Twine(file.getLine()) + ":" + Twine(file.getColumn()))
                  .str();
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  if (where.empty()) {
    llvm::raw_string_ostream os(where);
    op->getLoc().print(os);
  }
  return (op->getName().getStringRef() + " at " + where + ": " + what).str();
}

void mlir::moe::lowering::assertInRange(ImplicitLocOpBuilder &b, Value value,
                                        int64_t lo, int64_t hi,
                                        const std::string &message) {
  if (message.empty())
    return;
  Type type = value.getType();
  auto constant = [&](int64_t v) -> Value {
    if (type.isIndex())
      return arith::ConstantIndexOp::create(b, v);
    return arith::ConstantIntOp::create(b, type, v);
  };
  Value atLeast = arith::CmpIOp::create(b, arith::CmpIPredicate::sge, value,
                                        constant(lo));
  Value below = arith::CmpIOp::create(b, arith::CmpIPredicate::slt, value,
                                      constant(hi));
  cf::AssertOp::create(b, arith::AndIOp::create(b, atLeast, below), message);
}
