//===- Emitter.h - Small IR-building helpers for the moe lowering -*- C++
//-*-===//
//
// Internal to the MoEToLinalg conversion: constants, zero-filled tensors,
// element casts, counted scf.for loops carrying tensors, and elementwise
// linalg.generic ops, so that each lowering pattern reads like the algorithm
// it implements.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOLINALG_EMITTER_H
#define MOE_LIB_CONVERSION_MOETOLINALG_EMITTER_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/Transforms/DialectConversion.h"
#include "moe/IR/MoEDialect.h"

namespace mlir::moe::lowering {

/// The body of a counted loop: given the induction variable and the carried
/// values, returns the values carried into the next iteration.
using LoopBody = llvm::function_ref<SmallVector<Value>(ImplicitLocOpBuilder &,
                                                       Value, ValueRange)>;

/// Elementwise body: scalar inputs in, scalar result out.
using ScalarFn = llvm::function_ref<Value(ImplicitLocOpBuilder &, ValueRange)>;

class Emitter {
public:
  Emitter(Location loc, OpBuilder &builder) : b(loc, builder) {}

  ImplicitLocOpBuilder &builder() { return b; }

  Value index(int64_t v) { return arith::ConstantIndexOp::create(b, v); }
  Value i64(int64_t v) { return arith::ConstantIntOp::create(b, v, 64); }
  Value i32(int64_t v) { return arith::ConstantIntOp::create(b, v, 32); }
  Value f32(double v) {
    return arith::ConstantFloatOp::create(b, b.getF32Type(), APFloat(float(v)));
  }
  Value f64(double v) {
    return arith::ConstantFloatOp::create(b, b.getF64Type(), APFloat(v));
  }
  Value boolean(bool v) { return arith::ConstantIntOp::create(b, v, 1); }

  /// A tensor of the given static shape filled with `value`.
  Value filled(ArrayRef<int64_t> shape, Value value) {
    Value empty = tensor::EmptyOp::create(b, shape, value.getType());
    return linalg::FillOp::create(b, value, empty).getResult(0);
  }
  /// The zero of a float or integer element type.
  Value zero(Type elt) {
    if (auto f = dyn_cast<FloatType>(elt))
      return arith::ConstantFloatOp::create(
          b, f, APFloat::getZero(f.getFloatSemantics()));
    return arith::ConstantIntOp::create(b, elt, 0);
  }

  Value extract(Value tensor, ValueRange indices) {
    return tensor::ExtractOp::create(b, tensor, indices);
  }
  Value insert(Value scalar, Value tensor, ValueRange indices) {
    return tensor::InsertOp::create(b, scalar, tensor, indices);
  }
  /// Reads an i32/i64 tensor element as an index.
  Value extractIndex(Value tensor, ValueRange indices) {
    return arith::IndexCastOp::create(b, b.getIndexType(),
                                      extract(tensor, indices));
  }

  /// Float scalar conversions between f32/bf16/f16/f64.
  Value castFloat(Value v, Type to) {
    Type from = v.getType();
    if (from == to)
      return v;
    if (cast<FloatType>(from).getWidth() < cast<FloatType>(to).getWidth())
      return arith::ExtFOp::create(b, to, v);
    return arith::TruncFOp::create(b, to, v);
  }

  /// for iv in [0, ub): carried = body(iv, carried). Returns the final values.
  SmallVector<Value> loop(Value ub, ValueRange inits, LoopBody body) {
    auto forOp = scf::ForOp::create(
        b, index(0), ub, index(1), inits,
        [&](OpBuilder &nested, Location loc, Value iv, ValueRange args) {
          ImplicitLocOpBuilder inner(loc, nested);
          SmallVector<Value> next = body(inner, iv, args);
          scf::YieldOp::create(inner, next);
        });
    return SmallVector<Value>(forOp.getResults());
  }
  SmallVector<Value> loop(int64_t ub, ValueRange inits, LoopBody body) {
    return loop(index(ub), inits, body);
  }

  /// Elementwise map of same-shaped tensors into a new tensor of `elt`.
  Value map(ValueRange inputs, Type elt, ScalarFn fn) {
    auto type = cast<RankedTensorType>(inputs.front().getType());
    SmallVector<OpFoldResult> sizes =
        tensor::getMixedSizes(b, b.getLoc(), inputs.front());
    Value init = tensor::EmptyOp::create(b, sizes, elt);
    SmallVector<AffineMap> maps(inputs.size() + 1,
                                b.getMultiDimIdentityMap(type.getRank()));
    SmallVector<utils::IteratorType> iters(type.getRank(),
                                           utils::IteratorType::parallel);
    auto generic = linalg::GenericOp::create(
        b, TypeRange{init.getType()}, inputs, ValueRange{init}, maps, iters,
        [&](OpBuilder &nested, Location loc, ValueRange args) {
          ImplicitLocOpBuilder inner(loc, nested);
          Value out = fn(inner, args.drop_back());
          linalg::YieldOp::create(inner, out);
        });
    return generic.getResult(0);
  }

  /// A linalg.generic with one output: `body` gets the scalar block
  /// arguments (inputs, then the output) and returns the value to yield.
  Value generic(ValueRange inputs, Value init, ArrayRef<AffineMap> maps,
                ArrayRef<utils::IteratorType> iters, ScalarFn body) {
    auto op = linalg::GenericOp::create(
        b, TypeRange{init.getType()}, inputs, ValueRange{init}, maps, iters,
        [&](OpBuilder &nested, Location loc, ValueRange args) {
          ImplicitLocOpBuilder inner(loc, nested);
          linalg::YieldOp::create(inner, body(inner, args));
        });
    return op.getResult(0);
  }

  /// Casts a float tensor to element type `elt` (no-op when it has it).
  Value castTensor(Value tensor, Type elt) {
    if (cast<RankedTensorType>(tensor.getType()).getElementType() == elt)
      return tensor;
    return map(tensor, elt, [&](ImplicitLocOpBuilder &ib, ValueRange args) {
      Emitter e(ib.getLoc(), ib);
      return e.castFloat(args[0], elt);
    });
  }

private:
  ImplicitLocOpBuilder b;
};

/// The expert nonlinearity on f32 scalars or f32 vectors: act(x), or
/// act'(gate) · x for the gated forms (`geglu` uses gelu_tanh, `swiglu`
/// silu). Shared by the linalg lowering and the vector kernels.
Value activate(ImplicitLocOpBuilder &b, Activation activation, Value x,
               Value gate);

/// The buffer of a tensor operand that a kernel reads in place
/// (`bufferization.to_buffer ... read_only`, any offset and outer strides,
/// unit innermost stride); null for a null tensor. Shared by the CPU vector
/// kernels and the GPU tensor-core kernels of moe.grouped_matmul.
Value readOnlyBuffer(ImplicitLocOpBuilder &b, Value tensor);

/// scf.for %i = lo to hi step 1 with no carried values; `body` emits the
/// loop's body at %i (the yield is added).
scf::ForOp
forEach(ImplicitLocOpBuilder &b, Value lo, Value hi,
        llvm::function_ref<void(ImplicitLocOpBuilder &, Value)> body);

/// σ(x) = 1 / (1 + e^-x) on an f32 scalar: 0 for very negative x (e^-x =
/// +inf), 1 for very positive ones.
Value sigmoid(ImplicitLocOpBuilder &b, Value x);

/// A lowering pattern that may emit runtime checks.
template <typename Op> struct CheckedPattern : OpConversionPattern<Op> {
  CheckedPattern(MLIRContext *context, bool checks, PatternBenefit benefit = 1)
      : OpConversionPattern<Op>(context, benefit), checks(checks) {}
  bool checks;
};

/// With runtime checks: the text a failed check of `op` prints,
/// "<op name> at <file:line:col>: <what>". Empty (no check) when `enabled`
/// is false.
std::string checkMessage(bool enabled, Operation *op, const Twine &what);

/// cf.assert(lo <= value < hi) for an integer or index `value`, with
/// `message`; nothing when the message is empty.
void assertInRange(ImplicitLocOpBuilder &b, Value value, int64_t lo, int64_t hi,
                   const std::string &message);

/// starts[e] = Σ_{e' < e} counts[e'] rounded up to a multiple of `block`,
/// as an [E + 1] i64 tensor (the last entry is the total).
Value exclusiveScan(Emitter &e, Value counts, int64_t experts, int64_t block);

/// The selection key of a probability: NaN ranks as -inf, below every
/// number (spec §3.7), so that every choice is a valid index.
Value rankKey(ImplicitLocOpBuilder &b, Value p);

/// One step of an ordered selection (key descending, then index ascending):
/// the first of `count` candidates after (`prevKey`, `prevIndex`); candidate
/// c is `at(c)` = (its index, its score). Returns (key, index, score) of the
/// choice, index -1 when none is left.
SmallVector<Value> nextInOrder(
    ImplicitLocOpBuilder &b, int64_t count, Value prevKey, Value prevIndex,
    llvm::function_ref<std::pair<Value, Value>(ImplicitLocOpBuilder &, Value)>
        at);

/// Index arithmetic shorthands for the builders of loops over buffers.
namespace ix {
inline Value cst(ImplicitLocOpBuilder &b, int64_t v) {
  return arith::ConstantIndexOp::create(b, v);
}
inline Value add(ImplicitLocOpBuilder &b, Value x, Value y) {
  return arith::AddIOp::create(b, x, y);
}
inline Value mul(ImplicitLocOpBuilder &b, Value x, int64_t y) {
  return arith::MulIOp::create(b, x, cst(b, y));
}
inline Value div(ImplicitLocOpBuilder &b, Value x, int64_t y) {
  return arith::DivUIOp::create(b, x, cst(b, y));
}
inline Value rem(ImplicitLocOpBuilder &b, Value x, int64_t y) {
  return arith::RemUIOp::create(b, x, cst(b, y));
}
/// A buffer element, read or written.
inline Value load(ImplicitLocOpBuilder &b, Value memref, ValueRange indices) {
  return memref::LoadOp::create(b, memref, indices);
}
inline void store(ImplicitLocOpBuilder &b, Value v, Value memref,
                  ValueRange indices) {
  memref::StoreOp::create(b, v, memref, indices);
}
/// An integer as an index.
inline Value toIndex(ImplicitLocOpBuilder &b, Value v) {
  return arith::IndexCastOp::create(b, b.getIndexType(), v);
}
} // namespace ix

/// for i in [0, n), every i independent: a two-dimensional scf.parallel
/// over (ceil(n / 32), 32) with a bound check, which the GPU pipeline's
/// tiling and mapping make one kernel of whole warps.
void parallelFor(ImplicitLocOpBuilder &b, int64_t n,
                 llvm::function_ref<void(ImplicitLocOpBuilder &, Value)> body);

/// moe.route_rows and the statistics as parallel loops over buffers (the
/// routing kernels of the GPU pipeline; see LowerRoutingParallel.cpp).
void populateParallelRoutingPatterns(RewritePatternSet &patterns,
                                     bool checks = false);

/// Patterns of the lowering files.
/// `cpuKernels`: the router logits as a one-expert moe.grouped_matmul.
/// `checks`: runtime checks of the indices each pattern computes or reads.
/// `parallelLoops`: moe.route_rows and the statistics by
/// populateParallelRoutingPatterns.
void populateLowerRoutingPatterns(RewritePatternSet &patterns,
                                  bool cpuKernels = false, bool checks = false,
                                  bool parallelLoops = false);
void populateLowerExpertPatterns(RewritePatternSet &patterns,
                                 bool checks = false);
void populateLowerCollectivePatterns(RewritePatternSet &patterns);
/// `cpuKernels`: grouped matmuls are left for the vector kernels.
/// `atomicScatter`: their scatter-add is a parallel loop of atomic adds.
void populateLowerGroupedPatterns(RewritePatternSet &patterns,
                                  bool cpuKernels = false, bool checks = false,
                                  bool atomicScatter = false);

} // namespace mlir::moe::lowering

#endif // MOE_LIB_CONVERSION_MOETOLINALG_EMITTER_H
