//===- LowerRuntimeChecks.cpp - Failed checks call the runtime -----------===//
//
// The moe-lower-runtime-checks pass: every host cf.assert becomes a branch
// to a block that calls moe_rt_check_failed(message) and ends in
// unreachable, so that a failed check is one error line on stderr and a
// clean exit status instead of convert-cf-to-llvm's puts + abort.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOELOWERRUNTIMECHECKS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

/// The runtime's reporter (runtime/lib/EntryPoints.cpp).
constexpr llvm::StringLiteral kReporter = "moe_rt_check_failed";

struct LowerRuntimeChecksPass
    : mlir::moe::impl::MoELowerRuntimeChecksBase<LowerRuntimeChecksPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<cf::AssertOp> asserts;
    module.walk([&](cf::AssertOp op) {
      // Kernels report through the device's own assert.
      if (!op->getParentOfType<gpu::GPUModuleOp>())
        asserts.push_back(op);
    });
    if (asserts.empty())
      return;
    MLIRContext *context = &getContext();
    OpBuilder b(context);
    auto ptrType = LLVM::LLVMPointerType::get(context);
    auto reporter = module.lookupSymbol<LLVM::LLVMFuncOp>(kReporter);
    if (!reporter) {
      b.setInsertionPointToStart(module.getBody());
      reporter = LLVM::LLVMFuncOp::create(
          b, module.getLoc(), kReporter,
          LLVM::LLVMFunctionType::get(LLVM::LLVMVoidType::get(context),
                                      {ptrType}));
    }
    // One global per distinct message.
    llvm::StringMap<std::string> globals;
    for (cf::AssertOp op : asserts) {
      Location loc = op.getLoc();
      Block *before = op->getBlock();
      Block *rest = before->splitBlock(op);
      Block *fail = b.createBlock(rest);
      b.setInsertionPointToEnd(before);
      cf::CondBranchOp::create(b, loc, op.getArg(), rest, ValueRange{}, fail,
                               ValueRange{});
      b.setInsertionPointToEnd(fail);
      std::string text = op.getMsg().str();
      auto [it, inserted] = globals.try_emplace(
          text, "moe_check_message_" + std::to_string(globals.size()));
      std::string terminated = text;
      terminated.push_back('\0');
      Value message;
      if (inserted) {
        message = LLVM::createGlobalString(loc, b, it->second, terminated,
                                           LLVM::Linkage::Internal);
      } else {
        message = LLVM::AddressOfOp::create(b, loc, ptrType, it->second);
      }
      LLVM::CallOp::create(b, loc, reporter, ValueRange{message});
      LLVM::UnreachableOp::create(b, loc);
      op.erase();
    }
  }
};

} // namespace
