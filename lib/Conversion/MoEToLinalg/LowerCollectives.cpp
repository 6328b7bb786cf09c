//===- LowerCollectives.cpp - Exchanges between ranks as runtime calls -*- C++
//-*-===//
//
// Lowers moe.all_to_all and moe.all_reduce over several ranks to calls of
// the runtime's C entry points (moe/Runtime/EntryPoints.h) on buffers: the
// operand is read through bufferization.to_buffer, the result is a fresh
// buffer the call fills, handed back with bufferization.to_tensor. Over one
// rank both are the identity.
//
//===----------------------------------------------------------------------===//

#include "Emitter.h"
#include "moe/IR/MoEOps.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::lowering;

namespace {

/// The entry-point suffix of an element type, or an empty string.
std::string typeSuffix(Type elt) {
  if (elt.isF32())
    return "f32";
  if (elt.isBF16())
    return "bf16";
  if (elt.isF16())
    return "f16";
  if (elt.isF64())
    return "f64";
  if (elt.isInteger(64))
    return "i64";
  if (elt.isInteger(32))
    return "i32";
  return "";
}

/// Declares (once per module) `name(memref<*xT>..., i64...)` with a C
/// interface.
func::FuncOp declareEntry(ConversionPatternRewriter &rewriter, Operation *from,
                          StringRef name, TypeRange inputs) {
  auto module = from->getParentOfType<ModuleOp>();
  if (auto existing = module.lookupSymbol<func::FuncOp>(name))
    return existing;
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPointToStart(module.getBody());
  auto decl = func::FuncOp::create(rewriter, from->getLoc(), name,
                                   rewriter.getFunctionType(inputs, {}));
  decl.setPrivate();
  decl->setAttr("llvm.emit_c_interface", rewriter.getUnitAttr());
  return decl;
}

/// The unranked view of a ranked tensor's buffer, for the C entry points.
Value unranked(ImplicitLocOpBuilder &b, Value memref) {
  auto type = cast<MemRefType>(memref.getType());
  return memref::CastOp::create(
      b, UnrankedMemRefType::get(type.getElementType(), 0), memref);
}

MemRefType bufferOf(Type tensor) {
  auto type = cast<RankedTensorType>(tensor);
  return MemRefType::get(type.getShape(), type.getElementType());
}

struct LowerAllToAll : OpConversionPattern<AllToAllOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(AllToAllOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    if (op.getRanks() == 1) {
      rewriter.replaceOp(op, adaptor.getInput());
      return success();
    }
    Type elt = op.getType().getElementType();
    std::string suffix = typeSuffix(elt);
    if (suffix.empty() || suffix == "f64" || suffix[0] == 'i')
      return rewriter.notifyMatchFailure(op, "no entry point for this type");
    Emitter e(op.getLoc(), rewriter);
    ImplicitLocOpBuilder &b = e.builder();
    Value src = bufferization::ToBufferOp::create(
        b, bufferOf(op.getInput().getType()), adaptor.getInput(),
        /*read_only=*/true);
    Value dst = memref::AllocOp::create(b, bufferOf(op.getType()));
    Type i64 = b.getI64Type();
    Value srcU = unranked(b, src), dstU = unranked(b, dst);
    func::FuncOp entry =
        declareEntry(rewriter, op, "moe_rt_all_to_all_" + suffix,
                     {srcU.getType(), dstU.getType(), i64, i64, i64});
    func::CallOp::create(b, entry,
                         ValueRange{srcU, dstU, e.i64(op.getRanks()),
                                    e.i64(op.getSplitDim()),
                                    e.i64(op.getConcatDim())});
    rewriter.replaceOp(op, bufferization::ToTensorOp::create(
                               b, op.getType(), dst, /*restrict=*/true,
                               /*writable=*/true));
    return success();
  }
};

struct LowerAllReduce : OpConversionPattern<AllReduceOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(AllReduceOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    if (op.getRanks() == 1) {
      rewriter.replaceOp(op, adaptor.getInput());
      return success();
    }
    std::string suffix = typeSuffix(op.getType().getElementType());
    if (suffix.empty() || suffix == "bf16" || suffix == "f16")
      return rewriter.notifyMatchFailure(op, "no entry point for this type");
    Emitter e(op.getLoc(), rewriter);
    ImplicitLocOpBuilder &b = e.builder();
    MemRefType type = bufferOf(op.getType());
    Value src = bufferization::ToBufferOp::create(b, type, adaptor.getInput(),
                                                  /*read_only=*/true);
    Value data = memref::AllocOp::create(b, type);
    memref::CopyOp::create(b, src, data);
    Value dataU = unranked(b, data);
    func::FuncOp entry =
        declareEntry(rewriter, op, "moe_rt_all_reduce_" + suffix,
                     {dataU.getType(), b.getI64Type()});
    func::CallOp::create(b, entry, ValueRange{dataU, e.i64(op.getRanks())});
    rewriter.replaceOp(op, bufferization::ToTensorOp::create(
                               b, op.getType(), data, /*restrict=*/true,
                               /*writable=*/true));
    return success();
  }
};

struct LowerAllGather : OpConversionPattern<AllGatherOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(AllGatherOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    if (op.getRanks() == 1) {
      rewriter.replaceOp(op, adaptor.getInput());
      return success();
    }
    std::string suffix = typeSuffix(op.getType().getElementType());
    if (suffix.empty() || suffix == "f64" || suffix == "i64")
      return rewriter.notifyMatchFailure(op, "no entry point for this type");
    Emitter e(op.getLoc(), rewriter);
    ImplicitLocOpBuilder &b = e.builder();
    Value src = bufferization::ToBufferOp::create(
        b, bufferOf(op.getInput().getType()), adaptor.getInput(),
        /*read_only=*/true);
    Value dst = memref::AllocOp::create(b, bufferOf(op.getType()));
    Value srcU = unranked(b, src), dstU = unranked(b, dst);
    func::FuncOp entry =
        declareEntry(rewriter, op, "moe_rt_all_gather_" + suffix,
                     {srcU.getType(), dstU.getType(), b.getI64Type()});
    func::CallOp::create(b, entry,
                         ValueRange{srcU, dstU, e.i64(op.getRanks())});
    rewriter.replaceOp(op, bufferization::ToTensorOp::create(
                               b, op.getType(), dst, /*restrict=*/true,
                               /*writable=*/true));
    return success();
  }
};

struct LowerRank : OpConversionPattern<RankOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(RankOp op, OpAdaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Emitter e(op.getLoc(), rewriter);
    ImplicitLocOpBuilder &b = e.builder();
    if (op.getRanks() == 1) {
      rewriter.replaceOp(op, e.index(0));
      return success();
    }
    auto module = op->getParentOfType<ModuleOp>();
    auto entry = module.lookupSymbol<func::FuncOp>("moe_rt_rank");
    if (!entry) {
      OpBuilder::InsertionGuard guard(rewriter);
      rewriter.setInsertionPointToStart(module.getBody());
      entry = func::FuncOp::create(
          rewriter, op.getLoc(), "moe_rt_rank",
          rewriter.getFunctionType({b.getI64Type()}, {b.getI64Type()}));
      entry.setPrivate();
      entry->setAttr("llvm.emit_c_interface", rewriter.getUnitAttr());
    }
    Value rank =
        func::CallOp::create(b, entry, ValueRange{e.i64(op.getRanks())})
            .getResult(0);
    rewriter.replaceOp(
        op, arith::IndexCastOp::create(b, b.getIndexType(), rank).getResult());
    return success();
  }
};

} // namespace

void mlir::moe::lowering::populateLowerCollectivePatterns(
    RewritePatternSet &patterns) {
  patterns.add<LowerAllToAll, LowerAllReduce, LowerAllGather, LowerRank>(
      patterns.getContext());
}
