//===- ContractionToGpu.cpp - Dense contractions as tiled SIMT kernels ----===//
//
// The moe-contraction-to-gpu pass: a dense contraction on buffers,
// C[m, n] += A[m, k] · B[n, k] accumulated in f32 (the router's logits,
// x · routerᵀ, which the spec keeps in f32 whatever the layer's dtype),
// becomes one kernel of shared-memory tiles and register micro-tiles:
//
//   block   a BM x BN tile of C; per step of kDepth k values, its threads
//           copy the A rows and B rows of the step (consecutive lanes read
//           consecutive k: coalesced) into shared memory, transposed and
//           converted to f32, and each thread multiplies RM x RN elements
//           of C from vectors of the tiles (RM rows of A, RN of B per k);
//   steps   double-buffered: the loads of step i + 1 are issued before
//           step i's multiply-adds and stored into the other buffer after
//           them, with one block barrier per step.
//
// Without it the contraction becomes one thread per element of C reading
// its A row and B row from global memory (moe-reduction-loops), which for
// the router means every lane of a warp reading another B row: 32 sectors
// per load.
//
// With `host-loops` the kernel becomes host loops of the same structure: per
// block, per phase (loads, multiply-adds, stores), per thread, the shared
// tiles, each thread's accumulators and its loaded values host buffers, so
// that the tiles' index math is checked numerically without a GPU.
//
//===----------------------------------------------------------------------===//

#include "GpuKernels.h"
#include "MoEToLinalg/Emitter.h"
#include "moe/Conversion/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/Support/MathExtras.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOECONTRACTIONTOGPU
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe::lowering;
using namespace mlir::moe::lowering::ix;
using mlir::moe::kernels::loadRow;
using mlir::moe::kernels::storeRow;

namespace {

/// k values per step.
constexpr int64_t kDepth = 32;
/// Extra f32 words per row of a shared tile (keeps rows 16-byte aligned).
constexpr int64_t kPad = 4;
/// Shared tiles per operand (double buffering).
constexpr int64_t kStages = 2;
/// Blocks per SM the kernel's registers must allow.
constexpr int64_t kMinBlocksPerSM = 4;

/// The tile shape, from N alone (M and K only change the grid and the steps).
struct Tiling {
  int64_t bm, bn; // block tile of C
  int64_t rm, rn; // thread micro-tile
  int64_t tx, ty; // threads along n and m
  int64_t threads() const { return tx * ty; }
};

/// BN: N rounded up to a power of two, 4 to 64; narrow tiles (few experts)
/// take fewer rows and threads per block, so that a call still has many
/// blocks.
Tiling tilingFor(int64_t n) {
  Tiling t;
  t.bn = std::clamp<int64_t>(llvm::PowerOf2Ceil(n), 4, 64);
  t.rn = 4;
  t.tx = t.bn / t.rn;
  t.rm = t.bn >= 32 ? 4 : t.bn == 16 ? 2 : 1;
  t.bm = t.bn >= 16 ? 64 : 32;
  t.ty = t.bm / t.rm;
  return t;
}

/// A matched contraction: C[m, n] (+)= Σ_k f32(A[m, k]) · f32(B[n, k]).
struct Contraction {
  linalg::GenericOp op;
  Value a, b, c;
  int64_t m = 0, n = 0, k = 0;
  /// The linalg.fill of C with 0 right before the op (C need not be read).
  linalg::FillOp zeroFill;
};

bool isOperandType(Type type) {
  return type.isF32() || type.isBF16() || type.isF16();
}

/// `all` && index < bound (`all` null: none yet), as an i1.
Value andBelow(ImplicitLocOpBuilder &b, Value all, Value index, int64_t bound) {
  Value in =
      arith::CmpIOp::create(b, arith::CmpIPredicate::ult, index, cst(b, bound));
  return all ? arith::AndIOp::create(b, all, in).getResult() : in;
}

/// The block argument `v` is, possibly through an arith.extf to f32.
BlockArgument throughExtension(Value v) {
  if (auto ext = v.getDefiningOp<arith::ExtFOp>())
    v = ext.getIn();
  return dyn_cast<BlockArgument>(v);
}

/// Why `op` is not a contraction this pass takes (empty when it is).
std::string match(linalg::GenericOp op, Contraction &out) {
  if (!op.hasPureBufferSemantics() || op.getNumDpsInputs() != 2 ||
      op.getNumDpsInits() != 1)
    return "not two buffer inputs and one buffer output";
  MLIRContext *ctx = op.getContext();
  AffineExpr m, n, k;
  bindDims(ctx, m, n, k);
  SmallVector<AffineMap> expected = {AffineMap::get(3, 0, {m, k}, ctx),
                                     AffineMap::get(3, 0, {n, k}, ctx),
                                     AffineMap::get(3, 0, {m, n}, ctx)};
  if (op.getIndexingMapsArray() != expected)
    return "indexing maps are not (m, k), (n, k) -> (m, n)";
  auto iterators = op.getIteratorTypesArray();
  if (iterators[0] != utils::IteratorType::parallel ||
      iterators[1] != utils::IteratorType::parallel ||
      iterators[2] != utils::IteratorType::reduction)
    return "iterators are not parallel, parallel, reduction";
  auto aType = cast<MemRefType>(op.getDpsInputs()[0].getType());
  auto bType = cast<MemRefType>(op.getDpsInputs()[1].getType());
  auto cType = dyn_cast<MemRefType>(op.getDpsInits()[0].getType());
  if (!cType || !aType.hasStaticShape() || !bType.hasStaticShape() ||
      !cType.hasStaticShape())
    return "dynamic shapes";
  if (!isOperandType(aType.getElementType()) ||
      !isOperandType(bType.getElementType()) || !cType.getElementType().isF32())
    return "element types are not f32/bf16/f16 into f32";
  // The body: (extf) a, (extf) b, mulf, addf with the output, yield.
  Block &body = op.getRegion().front();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  auto add = yield.getOperand(0).getDefiningOp<arith::AddFOp>();
  if (!add)
    return "the body does not end in an addition";
  Value acc = body.getArgument(2);
  Value product = add.getLhs() == acc ? add.getRhs() : add.getLhs();
  if (add.getLhs() != acc && add.getRhs() != acc)
    return "the addition does not take the output";
  auto mul = product.getDefiningOp<arith::MulFOp>();
  if (!mul)
    return "the addend is not a product";
  BlockArgument x = throughExtension(mul.getLhs()),
                y = throughExtension(mul.getRhs());
  if (!x || !y || x.getOwner() != &body || y.getOwner() != &body ||
      !((x.getArgNumber() == 0 && y.getArgNumber() == 1) ||
        (x.getArgNumber() == 1 && y.getArgNumber() == 0)))
    return "the product is not of the two inputs";
  if (!mul.getType().isF32())
    return "the product is not f32";
  // Nothing else in the body.
  size_t expectedOps = 3 + (mul.getLhs() != x) + (mul.getRhs() != y);
  if (body.getOperations().size() != expectedOps)
    return "the body computes more than a multiply-add";
  out.op = op;
  out.a = op.getDpsInputs()[0];
  out.b = op.getDpsInputs()[1];
  out.c = op.getDpsInits()[0];
  out.m = cType.getDimSize(0);
  out.n = cType.getDimSize(1);
  out.k = aType.getDimSize(1);
  if (out.m == 0 || out.n == 0 || out.k == 0)
    return "an empty dimension";
  // The fill of C with zero just before (only ops without memory effects
  // between): C then need not be read.
  for (Operation *prev = op->getPrevNode(); prev; prev = prev->getPrevNode()) {
    if (auto fill = dyn_cast<linalg::FillOp>(prev)) {
      if (fill.hasPureBufferSemantics() && fill.getOutputs()[0] == out.c &&
          matchPattern(fill.getInputs()[0], m_AnyZeroFloat()))
        out.zeroFill = fill;
      break;
    }
    if (!isMemoryEffectFree(prev))
      break;
  }
  return "";
}

class TiledContraction {
public:
  TiledContraction(const Contraction &c, bool hostLoops)
      : c(c), t(tilingFor(c.n)), hostLoops(hostLoops) {
    aLoads = t.bm * kDepth / t.threads();
    bLoads = t.bn * kDepth / t.threads();
    assert(aLoads * t.threads() == t.bm * kDepth &&
           bLoads * t.threads() == t.bn * kDepth && "whole loads per thread");
  }

  void build(ImplicitLocOpBuilder &b);

private:
  int64_t pitchA() const { return t.bm + kPad; }
  int64_t pitchB() const { return t.bn + kPad; }
  int64_t steps() const { return (c.k + kDepth - 1) / kDepth; }

  SmallVector<Value> loadStep(ImplicitLocOpBuilder &b, Value tid, Value k0);
  void storeStep(ImplicitLocOpBuilder &b, Value tid, ValueRange values,
                 Value stage);
  SmallVector<Value> loadVector(ImplicitLocOpBuilder &b, Value tile,
                                Value stage, Value kk, Value first,
                                int64_t count);
  SmallVector<Value> multiply(ImplicitLocOpBuilder &b, Value tid, Value stage,
                              ValueRange acc);
  void epilogue(ImplicitLocOpBuilder &b, Value tid, ValueRange acc);
  void block(ImplicitLocOpBuilder &b, Value bx, Value by, Value tid);

  Contraction c;
  Tiling t;
  bool hostLoops;
  int64_t aLoads, bLoads;
  // Per block: the first row and column of its tile of C.
  Value row0, col0;
  // The shared tiles [kStages, kDepth, pitch] (host buffers with host loops),
  // and with host loops every thread's accumulators and loaded values.
  Value tileA, tileB, hostAcc, hostLoaded;
};

/// Thread `tid`'s elements of the step at `k0`, as f32: aLoads of A, then
/// bLoads of B; element e = tid + threads · i of the [rows, kDepth] tile is
/// (e / kDepth, e % kDepth), so a warp's lanes read consecutive k. Out of
/// range elements read a clamped in-range address and give 0.
SmallVector<Value> TiledContraction::loadStep(ImplicitLocOpBuilder &b,
                                              Value tid, Value k0) {
  SmallVector<Value> values;
  Value zero = arith::ConstantOp::create(b, b.getF32FloatAttr(0));
  auto loadTile = [&](Value source, Value first, int64_t rows, int64_t extent,
                      int64_t count) {
    for (int64_t i = 0; i < count; ++i) {
      Value e = add(b, tid, cst(b, t.threads() * i));
      Value row = add(b, first, div(b, e, kDepth));
      Value col = add(b, k0, rem(b, e, kDepth));
      Value valid;
      auto clamp = [&](Value index, int64_t bound, bool needed) {
        if (!needed)
          return index;
        valid = andBelow(b, valid, index, bound);
        return arith::MinUIOp::create(b, index, cst(b, bound - 1)).getResult();
      };
      Value r = clamp(row, extent, extent % rows != 0);
      Value k = clamp(col, c.k, c.k % kDepth != 0);
      Value v = load(b, source, {r, k});
      if (!v.getType().isF32())
        v = arith::ExtFOp::create(b, b.getF32Type(), v);
      if (valid)
        v = arith::SelectOp::create(b, valid, v, zero);
      values.push_back(v);
    }
  };
  loadTile(c.a, row0, t.bm, c.m, aLoads);
  loadTile(c.b, col0, t.bn, c.n, bLoads);
  return values;
}

/// The values of loadStep into the tiles of `stage`, transposed: tile[k][row].
void TiledContraction::storeStep(ImplicitLocOpBuilder &b, Value tid,
                                 ValueRange values, Value stage) {
  for (auto [i, v] : llvm::enumerate(values)) {
    bool isA = static_cast<int64_t>(i) < aLoads;
    int64_t j = isA ? i : i - aLoads;
    Value e = add(b, tid, cst(b, t.threads() * j));
    store(b, v, isA ? tileA : tileB,
          {stage, rem(b, e, kDepth), div(b, e, kDepth)});
  }
}

/// tile[stage][kk][first .. first + count): one aligned vector load from
/// shared memory on the GPU, scalar loads of the same elements on the host.
SmallVector<Value> TiledContraction::loadVector(ImplicitLocOpBuilder &b,
                                                Value tile, Value stage,
                                                Value kk, Value first,
                                                int64_t count) {
  SmallVector<Value> out;
  if (hostLoops || count == 1) {
    for (int64_t i = 0; i < count; ++i)
      out.push_back(load(b, tile, {stage, kk, add(b, first, cst(b, i))}));
    return out;
  }
  Value vec = vector::LoadOp::create(
      b, VectorType::get({count}, b.getF32Type()), tile,
      ValueRange{stage, kk, first}, /*nontemporal=*/false,
      llvm::MaybeAlign(4 * count));
  for (int64_t i = 0; i < count; ++i)
    out.push_back(vector::ExtractOp::create(b, vec, i));
  return out;
}

/// Thread `tid`'s micro-tile: rows ty · RM + i, columns tx · RN + j of the
/// block's tile, over the kDepth k values of `stage`.
SmallVector<Value> TiledContraction::multiply(ImplicitLocOpBuilder &b,
                                              Value tid, Value stage,
                                              ValueRange acc) {
  Value firstRow = mul(b, div(b, tid, t.tx), t.rm);
  Value firstCol = mul(b, rem(b, tid, t.tx), t.rn);
  // Unrolled: the shared loads take constant offsets.
  SmallVector<Value> sums(acc);
  for (int64_t kk = 0; kk < kDepth; ++kk) {
    SmallVector<Value> as =
        loadVector(b, tileA, stage, cst(b, kk), firstRow, t.rm);
    SmallVector<Value> bs =
        loadVector(b, tileB, stage, cst(b, kk), firstCol, t.rn);
    for (int64_t i = 0; i < t.rm; ++i)
      for (int64_t j = 0; j < t.rn; ++j)
        sums[i * t.rn + j] =
            math::FmaOp::create(b, as[i], bs[j], sums[i * t.rn + j]);
  }
  return sums;
}

/// C of the thread's micro-tile: its sums (plus C's value unless C was
/// zero-filled), for the elements inside C.
void TiledContraction::epilogue(ImplicitLocOpBuilder &b, Value tid,
                                ValueRange acc) {
  Value firstRow = add(b, row0, mul(b, div(b, tid, t.tx), t.rm));
  Value firstCol = add(b, col0, mul(b, rem(b, tid, t.tx), t.rn));
  for (int64_t i = 0; i < t.rm; ++i)
    for (int64_t j = 0; j < t.rn; ++j) {
      Value row = add(b, firstRow, cst(b, i));
      Value col = add(b, firstCol, cst(b, j));
      auto write = [&](ImplicitLocOpBuilder &wb) {
        Value v = acc[i * t.rn + j];
        if (!c.zeroFill)
          v = arith::AddFOp::create(wb, load(wb, c.c, {row, col}), v);
        store(wb, v, c.c, {row, col});
      };
      // Only where the tiles do not divide C.
      Value inside;
      if (c.m % t.bm != 0)
        inside = andBelow(b, inside, row, c.m);
      if (c.n % t.bn != 0)
        inside = andBelow(b, inside, col, c.n);
      if (!inside) {
        write(b);
        continue;
      }
      scf::IfOp::create(b, inside, [&](OpBuilder &then, Location loc) {
        ImplicitLocOpBuilder wb(loc, then);
        write(wb);
        scf::YieldOp::create(wb);
      });
    }
}

void TiledContraction::block(ImplicitLocOpBuilder &b, Value bx, Value by,
                             Value tid) {
  row0 = mul(b, by, t.bm);
  col0 = mul(b, bx, t.bn);
  int64_t accCount = t.rm * t.rn;
  auto forThreads = [&](ImplicitLocOpBuilder &ib,
                        function_ref<void(ImplicitLocOpBuilder &, Value)> fn) {
    forEach(ib, cst(ib, 0), cst(ib, t.threads()), fn);
  };
  Value zero = arith::ConstantOp::create(b, b.getF32FloatAttr(0));
  // Step 0 into buffer 0.
  if (hostLoops) {
    linalg::FillOp::create(b, ValueRange{zero}, ValueRange{hostAcc});
    forThreads(b, [&](ImplicitLocOpBuilder &tb, Value th) {
      storeStep(tb, th, loadStep(tb, th, cst(tb, 0)), cst(tb, 0));
    });
  } else {
    storeStep(b, tid, loadStep(b, tid, cst(b, 0)), cst(b, 0));
    gpu::BarrierOp::create(b);
  }
  // Step i: load step i + 1 (the last step loads itself again, into the
  // buffer no later step reads), multiply from buffer i % 2, store the
  // loaded values into the other buffer (which step i - 1 read: every
  // thread passed the barrier after it), barrier.
  Value lastStep = cst(b, (steps() - 1) * kDepth);
  SmallVector<Value> inits(hostLoops ? 0 : accCount, zero);
  auto loop = scf::ForOp::create(
      b, cst(b, 0), cst(b, steps() * kDepth), cst(b, kDepth), inits,
      [&](OpBuilder &nested, Location loc, Value k0, ValueRange acc) {
        ImplicitLocOpBuilder kb(loc, nested);
        Value stage = rem(kb, div(kb, k0, kDepth), kStages);
        Value other = arith::SubIOp::create(kb, cst(kb, 1), stage);
        Value next =
            arith::MinUIOp::create(kb, add(kb, k0, cst(kb, kDepth)), lastStep);
        if (hostLoops) {
          forThreads(kb, [&](ImplicitLocOpBuilder &tb, Value th) {
            storeRow(tb, hostLoaded, th, loadStep(tb, th, next));
          });
          forThreads(kb, [&](ImplicitLocOpBuilder &tb, Value th) {
            storeRow(
                tb, hostAcc, th,
                multiply(tb, th, stage, loadRow(tb, hostAcc, th, accCount)));
          });
          forThreads(kb, [&](ImplicitLocOpBuilder &tb, Value th) {
            storeStep(tb, th, loadRow(tb, hostLoaded, th, aLoads + bLoads),
                      other);
          });
          scf::YieldOp::create(kb);
          return;
        }
        SmallVector<Value> loaded = loadStep(kb, tid, next);
        SmallVector<Value> sums = multiply(kb, tid, stage, acc);
        storeStep(kb, tid, loaded, other);
        gpu::BarrierOp::create(kb);
        scf::YieldOp::create(kb, sums);
      });
  if (hostLoops) {
    forThreads(b, [&](ImplicitLocOpBuilder &tb, Value th) {
      epilogue(tb, th, loadRow(tb, hostAcc, th, accCount));
    });
    return;
  }
  epilogue(b, tid, loop.getResults());
}

void TiledContraction::build(ImplicitLocOpBuilder &b) {
  int64_t gridX = (c.n + t.bn - 1) / t.bn, gridY = (c.m + t.bm - 1) / t.bm;
  auto tileType = [&](int64_t pitch, Attribute space) {
    return MemRefType::get({kStages, kDepth, pitch}, b.getF32Type(),
                           MemRefLayoutAttrInterface(), space);
  };
  if (hostLoops) {
    tileA = memref::AllocOp::create(b, tileType(pitchA(), Attribute()));
    tileB = memref::AllocOp::create(b, tileType(pitchB(), Attribute()));
    hostAcc = memref::AllocOp::create(
        b, MemRefType::get({t.threads(), t.rm * t.rn}, b.getF32Type()));
    hostLoaded = memref::AllocOp::create(
        b, MemRefType::get({t.threads(), aLoads + bLoads}, b.getF32Type()));
    moe::kernels::forEachBlock(b, gridX, gridY,
                               [&](ImplicitLocOpBuilder &bb, Value bx,
                                   Value by) { block(bb, bx, by, Value()); });
    // After the buffer passes: the host buffers are freed here.
    for (Value buffer : {tileA, tileB, hostAcc, hostLoaded})
      memref::DeallocOp::create(b, buffer);
    return;
  }
  int64_t aBytes = kStages * kDepth * pitchA() * 4;
  int64_t sharedBytes = aBytes + kStages * kDepth * pitchB() * 4;
  // Like CUDA's __launch_bounds__(threads, 4): without it ptxas keeps a
  // 256-thread block to 40 registers and spills.
  moe::kernels::launch(
      b, gridX, gridY, t.threads(), sharedBytes, kMinBlocksPerSM,
      [&](ImplicitLocOpBuilder &kb, gpu::LaunchOp launch, Value shared) {
        auto space = gpu::AddressSpaceAttr::get(kb.getContext(),
                                                gpu::AddressSpace::Workgroup);
        tileA = memref::ViewOp::create(kb, tileType(pitchA(), space), shared,
                                       cst(kb, 0), ValueRange{});
        tileB = memref::ViewOp::create(kb, tileType(pitchB(), space), shared,
                                       cst(kb, aBytes), ValueRange{});
        block(kb, launch.getBlockIds().x, launch.getBlockIds().y,
              launch.getThreadIds().x);
      });
}

struct ContractionToGpuPass
    : mlir::moe::impl::MoEContractionToGpuBase<ContractionToGpuPass> {
  using MoEContractionToGpuBase::MoEContractionToGpuBase;

  void runOnOperation() override {
    SmallVector<linalg::GenericOp> ops;
    getOperation()->walk([&](linalg::GenericOp op) { ops.push_back(op); });
    for (linalg::GenericOp op : ops) {
      Contraction contraction;
      std::string why = match(op, contraction);
      if (!why.empty()) {
        // Only contractions are worth a remark.
        if (remarks && op.getNumReductionLoops() > 0)
          op.emitRemark("moe-contraction-to-gpu: left to the loop lowering: ")
              << why;
        continue;
      }
      OpBuilder builder(op);
      ImplicitLocOpBuilder b(op.getLoc(), builder);
      TiledContraction(contraction, hostLoops).build(b);
      if (contraction.zeroFill)
        contraction.zeroFill.erase();
      op.erase();
    }
  }
};

} // namespace
