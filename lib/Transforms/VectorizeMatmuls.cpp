//===- VectorizeMatmuls.cpp - Register-tiled matmuls for the host --*- C++
//-*-===//
//
// The moe-vectorize-matmuls pass: outlines every statically shaped
// linalg.matmul / linalg.batch_matmul into a kernel, splits its columns over
// threads, blocks columns (32) and the reduction (256) so a weight panel
// stays in L1, register-tiles rows (8) one reduction step at a time,
// vectorizes, keeps the accumulator tile in registers across the reduction
// loop, and lowers the contraction to broadcast-FMA outer products. The
// schedule is a transform dialect script built here and run by the
// transform interpreter.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Transform/IR/TransformOps.h"
#include "mlir/Dialect/Transform/Interfaces/TransformInterfaces.h"
#include "mlir/Dialect/Transform/Transforms/TransformInterpreterUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Parser/Parser.h"

#include <algorithm>
#include <map>
#include <thread>

namespace mlir::moe {
#define GEN_PASS_DEF_MOEVECTORIZEMATMULS
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

constexpr llvm::StringLiteral kTileAttr = "moe.register_tile";

/// The largest of `candidates` that divides `size`.
int64_t dividingTile(int64_t size, ArrayRef<int64_t> candidates) {
  for (int64_t c : candidates)
    if (size % c == 0)
      return c;
  return 1;
}

/// Tile sizes (batch, rows, columns, reduction block) for a static matmul,
/// or an empty vector when the op is not a candidate.
SmallVector<int64_t> registerTile(linalg::LinalgOp op) {
  if (!op.hasPureTensorSemantics() || op.hasDynamicShape())
    return {};
  SmallVector<int64_t> loops = op.getStaticLoopRanges();
  bool batched = isa<linalg::BatchMatmulOp>(op);
  int64_t rows = loops[batched ? 1 : 0], cols = loops[batched ? 2 : 1];
  SmallVector<int64_t> tile;
  if (batched)
    tile.push_back(1);
  tile.push_back(dividingTile(rows, {8, 4, 2}));
  tile.push_back(dividingTile(cols, {32, 16, 8, 4, 2}));
  tile.push_back(dividingTile(loops.back(), {256, 128, 64, 32, 16, 8, 4, 2}));
  return tile;
}

std::string joinInts(ArrayRef<int64_t> values, StringRef sep) {
  std::string out;
  for (auto [i, v] : llvm::enumerate(values))
    out += (i ? sep.str() : "") + std::to_string(v);
  return out;
}

/// The transform script: per tagged kernel function, tile its matmul,
/// vectorize the function, keep the accumulator in registers across the
/// reduction loop and lower the contraction to outer products.
std::string
buildSchedule(const std::map<std::string, SmallVector<int64_t>> &tags) {
  std::string s = R"(module attributes {transform.with_named_sequence} {
  transform.named_sequence @__transform_main(%root: !transform.any_op {transform.readonly}) {
)";
  int index = 0;
  for (const auto &[tag, tileAndThreads] : tags) {
    std::string id = std::to_string(index++);
    // The last entry is the thread split chosen for this kernel.
    ArrayRef<int64_t> tile = ArrayRef<int64_t>(tileAndThreads).drop_back();
    int64_t threads = tileAndThreads.back();
    // The entry for the reduction is the cache block KB; register tiles take
    // one reduction step at a time.
    bool batched = tile.size() == 4;
    std::string f = "%f" + id, m = "%m" + id, t = "%t" + id, v = "%v" + id;
    s += "    " + f +
         " = transform.structured.match ops{[\"func.func\"]} "
         "attributes{" +
         kTileAttr.str() + " = \"" + tag +
         "\"} in %root : (!transform.any_op) -> !transform.any_op\n";
    s += "    " + m +
         " = transform.structured.match ops{[\"linalg.matmul\", "
         "\"linalg.batch_matmul\"]} in " +
         f + " : (!transform.any_op) -> !transform.any_op\n";
    std::string target = m;
    if (threads > 1) {
      // Split the columns over the threads first (scf.forall).
      SmallVector<int64_t> split(tile.size(), 0);
      split[tile.size() - 2] = threads;
      s +=
          "    %p" + id + ", %fa" + id +
          " = transform.structured.tile_using_forall " + m + " num_threads [" +
          joinInts(split, ", ") +
          "] : (!transform.any_op) -> (!transform.any_op, !transform.any_op)\n";
      target = "%p" + id;
    }
    auto tileLoops = [&](const std::string &result, const std::string &op,
                         ArrayRef<int64_t> sizes, ArrayRef<int64_t> order) {
      int64_t loops = llvm::count_if(sizes, [](int64_t x) { return x != 0; });
      std::string types;
      for (int64_t i = 0; i < loops; ++i)
        types += ", !transform.any_op";
      s += "    " + result + ", %" + result.substr(1) +
           "_loops:" + std::to_string(loops) +
           " = transform.structured.tile_using_for " + op + " tile_sizes [" +
           joinInts(sizes, ", ") + "] interchange = [" + joinInts(order, ", ") +
           "] : (!transform.any_op) -> " + "(!transform.any_op" + types + ")\n";
    };
    // Cache blocks: columns, then reduction blocks (a [KB, cols] weight
    // panel stays in L1 across all row tiles).
    int64_t rows = tile[tile.size() - 3], cols = tile[tile.size() - 2],
            block = tile.back();
    if (batched) {
      tileLoops("%c" + id, target, {1, 0, cols, block}, {0, 2, 3, 1});
      tileLoops(t, "%c" + id, {0, rows, 0, 1}, {0, 1, 2, 3});
    } else {
      tileLoops("%c" + id, target, {0, cols, block}, {1, 2, 0});
      tileLoops(t, "%c" + id, {rows, 0, 1}, {0, 1, 2});
    }
    s += "    " + v +
         " = transform.structured.vectorize_children_and_apply_patterns " + f +
         " : (!transform.any_op) -> !transform.any_op\n";
    s += "    transform.apply_patterns to " + v + R"( {
      transform.apply_patterns.canonicalization
      transform.apply_patterns.tensor.fold_tensor_subset_ops_into_vector_transfers
    } : !transform.any_op
)";
    s += "    %loops" + id +
         " = transform.structured.match ops{[\"scf.for\"]} in " + v +
         " : (!transform.any_op) -> !transform.any_op\n";
    s += "    transform.foreach %loops" + id + R"( : !transform.any_op {
    ^bb0(%loop: !transform.any_op):
      transform.loop.hoist_loop_invariant_subsets %loop : !transform.any_op
    }
)";
    s += "    transform.apply_patterns to " + v + R"( {
      transform.apply_patterns.vector.lower_contraction lowering_strategy = "outerproduct"
      transform.apply_patterns.vector.lower_outerproduct
      transform.apply_patterns.vector.transfer_permutation_patterns
    } : !transform.any_op
)";
  }
  s += "    transform.yield\n  }\n}\n";
  return s;
}

/// Moves `op` into a private function of its own (so that vectorizing that
/// function touches nothing else) and calls it in place. Operands that are
/// slices of larger tensors are sliced inside the function instead, so that
/// bufferization passes the whole buffer rather than a copy of the slice.
void outline(linalg::LinalgOp op, StringAttr tag, int64_t index,
             ModuleOp module) {
  SmallVector<Value> arguments;
  auto addArgument = [&](Value v) {
    if (!llvm::is_contained(arguments, v))
      arguments.push_back(v);
  };
  for (Value operand : op->getOperands()) {
    if (auto slice = operand.getDefiningOp<tensor::ExtractSliceOp>()) {
      for (Value v : slice->getOperands())
        addArgument(v);
      continue;
    }
    addArgument(operand);
  }

  OpBuilder builder(module.getBodyRegion());
  builder.setInsertionPointToEnd(module.getBody());
  Location loc = op.getLoc();
  auto type = builder.getFunctionType(ValueRange(arguments).getTypes(),
                                      op->getResultTypes());
  auto kernel = func::FuncOp::create(
      builder, loc, "__moe_matmul_" + std::to_string(index), type);
  kernel.setPrivate();
  kernel->setAttr(kTileAttr, tag);
  Block *body = kernel.addEntryBlock();
  builder.setInsertionPointToStart(body);
  IRMapping mapping;
  mapping.map(arguments, body->getArguments());
  for (Value operand : op->getOperands())
    if (auto slice = operand.getDefiningOp<tensor::ExtractSliceOp>())
      builder.clone(*slice, mapping);
  Operation *clone = builder.clone(*op, mapping);
  func::ReturnOp::create(builder, loc, clone->getResults());

  builder.setInsertionPoint(op);
  auto call = func::CallOp::create(builder, loc, kernel, arguments);
  op->replaceAllUsesWith(call.getResults());
  op->erase();
}

struct VectorizeMatmulsPass
    : mlir::moe::impl::MoEVectorizeMatmulsBase<VectorizeMatmulsPass> {
  using MoEVectorizeMatmulsBase::MoEVectorizeMatmulsBase;

  /// The `threads` option, 0 meaning one per hardware thread.
  int64_t threadCount() const {
    if (threads > 0)
      return threads;
    return std::max<int64_t>(1, std::thread::hardware_concurrency());
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    std::map<std::string, SmallVector<int64_t>> tags;
    SmallVector<std::pair<linalg::LinalgOp, StringAttr>> kernels;
    module.walk([&](linalg::LinalgOp op) {
      if (!isa<linalg::MatmulOp, linalg::BatchMatmulOp>(op))
        return;
      SmallVector<int64_t> tile = registerTile(op);
      if (tile.empty())
        return;
      // One tag per kernel: each schedule block handles exactly one.
      std::string tag = op->getName().getStringRef().str() + ":" +
                        joinInts(tile, "x") + "#" +
                        std::to_string(kernels.size());
      kernels.emplace_back(op, StringAttr::get(&getContext(), tag));
      // Split the columns over the threads only when every thread gets a
      // whole number of column tiles.
      int64_t cols = op.getStaticLoopRanges()[tile.size() - 2];
      int64_t threads = threadCount();
      if (cols % (threads * tile[tile.size() - 2]) != 0)
        threads = 1;
      SmallVector<int64_t> entry(tile);
      entry.push_back(threads);
      tags.emplace(tag, entry);
    });
    if (tags.empty())
      return;
    for (auto [i, kernel] : llvm::enumerate(kernels))
      outline(kernel.first, kernel.second, i, module);

    OwningOpRef<ModuleOp> schedule =
        parseSourceString<ModuleOp>(buildSchedule(tags), &getContext());
    if (!schedule) {
      module.emitError("moe-vectorize-matmuls: invalid internal schedule");
      return signalPassFailure();
    }
    Operation *entry = transform::detail::findTransformEntryPoint(
        module, *schedule,
        transform::TransformDialect::kTransformEntryPointSymbolName);
    if (!entry || failed(transform::applyTransformNamedSequence(
                      module, entry, *schedule, transform::TransformOptions())))
      return signalPassFailure();
    module.walk([](func::FuncOp op) { op->removeAttr(kTileAttr); });
  }
};

} // namespace
