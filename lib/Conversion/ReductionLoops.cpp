//===- ReductionLoops.cpp - Reductions accumulated in registers ----*- C++ -*-===//
//
// The moe-reduction-loops pass: a linalg.generic on buffers with reduction
// iterators becomes a parallel loop nest over its parallel dimensions whose
// body carries the reduction in a register (scf.for with an iteration
// argument) and stores each output element once. Upstream's lowering to
// parallel loops loads and stores the output in every reduction step, which
// on the GPU costs a global store per multiply-add; here the multiply-add
// pair is also marked contractible, so that it becomes one fma.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEREDUCTIONLOOPS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

/// The indices `map` gives for the loop induction variables `ivs`.
SmallVector<Value> indicesOf(OpBuilder &b, Location loc, AffineMap map,
                             ValueRange ivs) {
  SmallVector<Value> indices;
  for (AffineExpr expr : map.getResults()) {
    if (auto dim = dyn_cast<AffineDimExpr>(expr)) {
      indices.push_back(ivs[dim.getPosition()]);
      continue;
    }
    indices.push_back(affine::AffineApplyOp::create(
        b, loc, AffineMap::get(map.getNumDims(), 0, expr), ivs));
  }
  return indices;
}

struct ReductionToRegisterLoops : OpRewritePattern<linalg::GenericOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(linalg::GenericOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.hasPureBufferSemantics() || op.getNumDpsInits() != 1)
      return rewriter.notifyMatchFailure(op, "needs buffers and one output");
    SmallVector<utils::IteratorType> iterators = op.getIteratorTypesArray();
    auto firstReduction =
        llvm::find(iterators, utils::IteratorType::reduction);
    if (firstReduction == iterators.end())
      return rewriter.notifyMatchFailure(op, "no reduction");
    if (!std::all_of(firstReduction, iterators.end(), [](auto it) {
          return it == utils::IteratorType::reduction;
        }))
      return rewriter.notifyMatchFailure(op, "reductions are not innermost");
    size_t parallel = firstReduction - iterators.begin();
    if (parallel == 0)
      return rewriter.notifyMatchFailure(op, "a full reduction");

    Location loc = op.getLoc();
    SmallVector<Range, 4> ranges =
        cast<linalg::LinalgOp>(op.getOperation()).createLoopRanges(rewriter, loc);
    auto values = [&](size_t from, size_t to, auto field) {
      SmallVector<Value> out;
      for (size_t i = from; i < to; ++i)
        out.push_back(getValueOrCreateConstantIndexOp(rewriter, loc,
                                                      ranges[i].*field));
      return out;
    };
    SmallVector<AffineMap> maps = op.getIndexingMapsArray();
    OpOperand *init = op.getDpsInitOperand(0);
    AffineMap outMap = maps[init->getOperandNumber()];
    Block &body = op->getRegion(0).front();

    scf::ParallelOp::create(
        rewriter, loc, values(0, parallel, &Range::offset),
        values(0, parallel, &Range::size), values(0, parallel, &Range::stride),
        [&](OpBuilder &b, Location l, ValueRange outer) {
          // The output indices use the parallel dimensions only.
          SmallVector<Value> padded(outer);
          padded.resize(iterators.size(), outer.front());
          SmallVector<Value> at = indicesOf(b, l, outMap, padded);
          Value start = memref::LoadOp::create(b, l, init->get(), at);
          scf::LoopNest nest = scf::buildLoopNest(
              b, l, values(parallel, iterators.size(), &Range::offset),
              values(parallel, iterators.size(), &Range::size),
              values(parallel, iterators.size(), &Range::stride),
              ValueRange{start},
              [&](OpBuilder &ib, Location il, ValueRange inner,
                  ValueRange acc) -> scf::ValueVector {
                SmallVector<Value> ivs(outer);
                ivs.append(inner.begin(), inner.end());
                IRMapping mapping;
                for (OpOperand *input : op.getDpsInputOperands()) {
                  Value value = input->get();
                  if (isa<MemRefType>(value.getType()))
                    value = memref::LoadOp::create(
                        ib, il, value,
                        indicesOf(ib, il, maps[input->getOperandNumber()],
                                  ivs));
                  mapping.map(body.getArgument(input->getOperandNumber()),
                              value);
                }
                mapping.map(body.getArgument(init->getOperandNumber()),
                            acc.front());
                for (Operation &inner : body.without_terminator()) {
                  if (auto index = dyn_cast<linalg::IndexOp>(inner)) {
                    mapping.map(index.getResult(), ivs[index.getDim()]);
                    continue;
                  }
                  Operation *copy = ib.clone(inner, mapping);
                  // The multiply-add may become one fused instruction.
                  if (auto fm =
                          dyn_cast<arith::ArithFastMathInterface>(copy))
                    if (isa<arith::MulFOp, arith::AddFOp>(copy))
                      copy->setAttr(fm.getFastMathAttrName(),
                                    arith::FastMathFlagsAttr::get(
                                        ib.getContext(),
                                        arith::FastMathFlags::contract));
                }
                auto yield = cast<linalg::YieldOp>(body.getTerminator());
                return {mapping.lookup(yield.getOperand(0))};
              });
          memref::StoreOp::create(b, l, nest.results.front(), init->get(), at);
        });
    rewriter.eraseOp(op);
    return success();
  }
};

struct MoEReductionLoopsPass
    : mlir::moe::impl::MoEReductionLoopsBase<MoEReductionLoopsPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<ReductionToRegisterLoops>(&getContext());
    if (failed(moe::applyPatternsOnly(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
