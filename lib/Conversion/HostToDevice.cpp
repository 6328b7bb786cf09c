//===- HostToDevice.cpp - Host spans that touch buffers as kernels --*- C++
//-*-===//
//
// The GPU pipeline's last step before outlining: whatever host code still
// reads or writes a buffer (the sequential parts the lowering does not emit
// as parallel loops) moves into a gpu.launch of one thread, so that the
// host only allocates, launches, calls the collectives and frees.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEHOSTTODEVICE
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

/// Launches, allocations, deallocations and calls stay on the host.
bool isHostOnly(Operation *op) {
  return isa<gpu::LaunchOp, gpu::LaunchFuncOp, memref::AllocOp,
             memref::AllocaOp, memref::DeallocOp, func::CallOp>(op);
}

/// An op that ends a span: a host-only op, a terminator, or a loop or
/// conditional holding a host-only op (a host loop that launches kernels).
bool isBoundary(Operation *op) {
  if (op->hasTrait<OpTrait::IsTerminator>())
    return true;
  return op
      ->walk([](Operation *inner) {
        return isHostOnly(inner) ? WalkResult::interrupt()
                                 : WalkResult::advance();
      })
      .wasInterrupted();
}

/// An op that touches memory: a read or write effect of its own or of an
/// op it holds (loops and conditionals), or an unknown effect.
bool touchesMemory(Operation *op) {
  if (isPure(op))
    return false;
  bool touches = false;
  op->walk([&](Operation *inner) {
    auto effects = dyn_cast<MemoryEffectOpInterface>(inner);
    if (!effects) {
      if (!inner->hasTrait<OpTrait::HasRecursiveMemoryEffects>() &&
          !inner->hasTrait<OpTrait::IsTerminator>())
        touches = true;
      return;
    }
    if (effects.hasEffect<MemoryEffects::Read>() ||
        effects.hasEffect<MemoryEffects::Write>())
      touches = true;
  });
  return touches;
}

struct HostToDevicePass
    : mlir::moe::impl::MoEHostToDeviceBase<HostToDevicePass> {
  using MoEHostToDeviceBase::MoEHostToDeviceBase;

  void runOnOperation() override {
    getOperation()->walk([&](func::FuncOp func) {
      for (Block &block : func.getBody())
        moveSpans(block);
    });
  }

  void moveSpans(Block &block) {
    SmallVector<Operation *> span;
    SmallVector<SmallVector<Operation *>> spans;
    auto close = [&] {
      // Trailing ops that touch nothing stay outside.
      while (!span.empty() && !touchesMemory(span.back()))
        span.pop_back();
      if (!span.empty())
        spans.push_back(span);
      span.clear();
    };
    for (Operation &op : block) {
      if (isBoundary(&op)) {
        close();
        continue;
      }
      if (span.empty() && !touchesMemory(&op))
        continue; // scalar ops before a span stay on the host
      span.push_back(&op);
    }
    close();
    for (ArrayRef<Operation *> ops : spans)
      moveSpan(ops);
  }

  void moveSpan(ArrayRef<Operation *> ops) {
    llvm::SmallPtrSet<Operation *, 16> inside(ops.begin(), ops.end());
    for (Operation *op : ops)
      for (Value result : op->getResults())
        for (Operation *user : result.getUsers())
          if (!inside.contains(op->getBlock()->findAncestorOpInBlock(*user))) {
            if (remarks)
              op->emitRemark("moe-host-to-device: left on the host: a value "
                             "of this span is used after it");
            return;
          }
    OpBuilder builder(ops.front());
    Location loc = ops.front()->getLoc();
    Value one = arith::ConstantIndexOp::create(builder, loc, 1);
    auto launch =
        gpu::LaunchOp::create(builder, loc, one, one, one, one, one, one);
    Block &body = launch.getBody().front();
    OpBuilder inner = OpBuilder::atBlockEnd(&body);
    auto terminator = gpu::TerminatorOp::create(inner, loc);
    for (Operation *op : ops)
      op->moveBefore(terminator);
  }
};

} // namespace

namespace mlir::moe {
#define GEN_PASS_DEF_MOEHOISTBUFFERS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

namespace {

struct HoistBuffersPass
    : mlir::moe::impl::MoEHoistBuffersBase<HoistBuffersPass> {
  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (!func.getBody().hasOneBlock())
      return;
    Block &body = func.getBody().front();
    Operation *terminator = body.getTerminator();
    SmallVector<Operation *> allocs, deallocs;
    for (Operation &op : body) {
      if (isa<memref::AllocOp>(op) && op.getNumOperands() == 0)
        allocs.push_back(&op);
      else if (isa<memref::DeallocOp>(op))
        deallocs.push_back(&op);
    }
    // In their order, before everything else; after everything else.
    Operation *first = &body.front();
    for (Operation *op : allocs)
      if (op != first)
        op->moveBefore(first);
      else
        first = op->getNextNode();
    for (Operation *op : deallocs)
      op->moveBefore(terminator);
  }
};

} // namespace
