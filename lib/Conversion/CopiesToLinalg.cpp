//===- CopiesToLinalg.cpp - memref.copy as linalg.copy -------------*- C++ -*-===//
//
// The moe-copies-to-linalg pass: buffer copies become linalg ops (copies of
// splat constant globals become fills), so that the GPU pipeline maps them to
// kernels with everything else.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOECOPIESTOLINALG
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

struct CopyToLinalg : OpRewritePattern<memref::CopyOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(memref::CopyOp op,
                                PatternRewriter &rewriter) const override {
    auto source = dyn_cast<MemRefType>(op.getSource().getType());
    auto target = dyn_cast<MemRefType>(op.getTarget().getType());
    if (!source || !target)
      return rewriter.notifyMatchFailure(op, "unranked buffers");
    // A host global is no kernel's to read: a splat constant becomes a fill
    // of its value; any other stays a host copy.
    if (auto get = op.getSource().getDefiningOp<memref::GetGlobalOp>()) {
      auto global = SymbolTable::lookupNearestSymbolFrom<memref::GlobalOp>(
          op, get.getNameAttr());
      auto init = global && global.getConstant()
                      ? dyn_cast_or_null<DenseElementsAttr>(
                            global.getInitialValueAttr())
                      : DenseElementsAttr();
      if (!init || !init.isSplat())
        return rewriter.notifyMatchFailure(op, "copy of a non-splat global");
      Value value = arith::ConstantOp::create(
          rewriter, op.getLoc(), cast<TypedAttr>(init.getSplatValue<Attribute>()));
      rewriter.replaceOpWithNewOp<linalg::FillOp>(op, ValueRange{value},
                                                  ValueRange{op.getTarget()});
      return success();
    }
    rewriter.replaceOpWithNewOp<linalg::CopyOp>(op, op.getSource(),
                                                op.getTarget());
    return success();
  }
};

struct MoECopiesToLinalgPass
    : mlir::moe::impl::MoECopiesToLinalgBase<MoECopiesToLinalgPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<CopyToLinalg>(&getContext());
    if (failed(moe::applyPatternsOnly(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
