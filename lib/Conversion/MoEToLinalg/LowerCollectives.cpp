//===- LowerCollectives.cpp - Exchanges between ranks as runtime calls -*- C++
//-*-===//
//
// Lowers the exchanges between ranks (moe.all_to_all, all_reduce,
// all_gather, exchange_rows, return_rows) to calls of the runtime's C entry
// points (moe/Runtime/EntryPoints.h) on buffers: the
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

/// Replaces `op` by a call of `moe_rt_<entry>_<type>` (the type is that of
/// the first result's elements) that fills a fresh buffer per result and
/// hands them back as tensors. The call gets the operands' buffers and the
/// fresh ones (`inPlace`, for one operand and one result: only the fresh
/// one, holding a copy of the operand), then `scalars` as i64. Over one rank
/// the op is the identity. Fails for element types without an entry point.
LogicalResult callIntoFreshBuffers(Operation *op, ValueRange inputs,
                                   ConversionPatternRewriter &rewriter,
                                   int64_t ranks, StringRef entry,
                                   ArrayRef<StringRef> suffixes, bool inPlace,
                                   ArrayRef<int64_t> scalars) {
  if (ranks == 1) {
    rewriter.replaceOp(op, inputs);
    return success();
  }
  std::string suffix = typeSuffix(
      cast<ShapedType>(op->getResult(0).getType()).getElementType());
  if (!llvm::is_contained(suffixes, suffix))
    return rewriter.notifyMatchFailure(op, "no entry point for this type");
  Emitter e(op->getLoc(), rewriter);
  ImplicitLocOpBuilder &b = e.builder();
  SmallVector<Value> sources, results, args;
  for (auto [input, original] : llvm::zip(inputs, op->getOperands()))
    sources.push_back(bufferization::ToBufferOp::create(
        b, bufferOf(original.getType()), input, /*read_only=*/true));
  for (Type type : op->getResultTypes())
    results.push_back(memref::AllocOp::create(b, bufferOf(type)));
  if (inPlace)
    memref::CopyOp::create(b, sources.front(), results.front());
  else
    for (Value source : sources)
      args.push_back(unranked(b, source));
  for (Value result : results)
    args.push_back(unranked(b, result));
  for (int64_t v : scalars)
    args.push_back(e.i64(v));
  func::FuncOp callee =
      declareEntry(rewriter, op, ("moe_rt_" + entry + "_" + suffix).str(),
                   ValueRange(args).getTypes());
  func::CallOp::create(b, callee, args);
  SmallVector<Value> tensors;
  for (auto [result, type] : llvm::zip(results, op->getResultTypes()))
    tensors.push_back(bufferization::ToTensorOp::create(
        b, type, result, /*restrict=*/true, /*writable=*/true));
  rewriter.replaceOp(op, tensors);
  return success();
}

struct LowerAllToAll : OpConversionPattern<AllToAllOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(AllToAllOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    return callIntoFreshBuffers(
        op, adaptor.getInput(), rewriter, op.getRanks(), "all_to_all",
        {"f32", "bf16", "f16"}, /*inPlace=*/false,
        {op.getRanks(), op.getSplitDim(), op.getConcatDim()});
  }
};

struct LowerAllReduce : OpConversionPattern<AllReduceOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(AllReduceOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    return callIntoFreshBuffers(op, adaptor.getInput(), rewriter, op.getRanks(),
                               "all_reduce", {"f32", "f64", "i64", "i32"},
                               /*inPlace=*/true, {op.getRanks()});
  }
};

struct LowerAllGather : OpConversionPattern<AllGatherOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(AllGatherOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    return callIntoFreshBuffers(op, adaptor.getInput(), rewriter, op.getRanks(),
                               "all_gather", {"f32", "bf16", "f16", "i32"},
                               /*inPlace=*/false, {op.getRanks()});
  }
};

struct LowerExchangeRows : OpConversionPattern<ExchangeRowsOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(ExchangeRowsOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    return callIntoFreshBuffers(op, adaptor.getOperands(), rewriter,
                                op.getRanks(), "exchange_rows",
                                {"f32", "bf16", "f16"},
                                /*inPlace=*/false, {op.getRanks()});
  }
};

struct LowerReturnRows : OpConversionPattern<ReturnRowsOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(ReturnRowsOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    return callIntoFreshBuffers(op, adaptor.getOperands(), rewriter,
                                op.getRanks(), "return_rows",
                                {"f32", "bf16", "f16"},
                                /*inPlace=*/false, {op.getRanks()});
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
  patterns.add<LowerAllToAll, LowerAllReduce, LowerAllGather, LowerExchangeRows,
               LowerReturnRows, LowerRank>(
      patterns.getContext());
}
