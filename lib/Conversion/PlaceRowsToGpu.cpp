//===- PlaceRowsToGpu.cpp - The routing's counting step as kernels --------===//
//
// The moe-place-rows-to-gpu pass: moe.place_rows_buffers (the counting half
// of moe.route_rows: which assignments keep a slot, the counts and offsets
// per expert, the expert-sorted rows) becomes two kernels whose phases
// share memory within a block and meet at block barriers:
//
//   chunk  one block per chunk of kChunk ranking positions of a group, one
//          thread per position: the chunk's experts into shared memory;
//          barrier; each assignment (position, choice rank j) counts the
//          same-expert assignments before it in the chunk at rank j, and the
//          last of them writes the chunk's count of (j, expert). The blocks
//          also clear the rows (no assignment: token -1, gate 0).
//   place  one block: per (group, expert), the starts of its (rank, chunk)
//          counts in that order and the kept total (at most the capacity);
//          barrier; per expert, the kept rows of the groups before each and
//          the count; barrier; the block-aligned offsets; barrier; per
//          assignment its slot (its chunk's start plus the count before it),
//          whether it is kept, and the row it writes.
//
// With `host-loops` each kernel is host loops of the same structure: per
// block, per phase, per thread, so that a value passes from one phase to
// the next only through memory, as on the GPU.
//
//===----------------------------------------------------------------------===//

#include "GpuKernels.h"
#include "MoEToLinalg/Emitter.h"
#include "moe/Conversion/Passes.h"
#include "moe/IR/MoEOps.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

#include <functional>

namespace mlir::moe {
#define GEN_PASS_DEF_MOEPLACEROWSTOGPU
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::lowering;
using namespace mlir::moe::lowering::ix;

namespace {

/// Ranking positions per chunk (threads of a chunk block).
constexpr int64_t kChunk = 128;
/// The i32 words of dynamic shared memory a block may use (48 KiB).
constexpr int64_t kSharedWords = 48 * 1024 / 4;
/// Threads of the one-block place kernel.
constexpr int64_t kPlaceThreads = 512;

/// A phase of a block kernel: what thread `thread` of block `block` does
/// between two barriers (the block's shared buffer reaches it through
/// blockKernel's `shared`).
using Phase =
    std::function<void(ImplicitLocOpBuilder &, Value block, Value thread)>;

/// A kernel of `grid` blocks of `threads` threads running `phases` with a
/// block barrier between each two, with `sharedWords` i32 words of memory
/// shared by a block's threads (returned through `shared` to the phases).
/// On the GPU one gpu.launch; with host loops, per block, per phase, per
/// thread.
void blockKernel(ImplicitLocOpBuilder &b, bool hostLoops, int64_t grid,
                 int64_t threads, int64_t sharedWords, Value &shared,
                 ArrayRef<Phase> phases) {
  Type i32 = b.getI32Type();
  if (hostLoops) {
    if (sharedWords)
      shared = memref::AllocOp::create(b, MemRefType::get({sharedWords}, i32));
    forEach(b, cst(b, 0), cst(b, grid),
            [&](ImplicitLocOpBuilder &bb, Value block) {
              for (const Phase &phase : phases)
                forEach(bb, cst(bb, 0), cst(bb, threads),
                        [&](ImplicitLocOpBuilder &tb, Value thread) {
                          phase(tb, block, thread);
                        });
            });
    if (sharedWords)
      memref::DeallocOp::create(b, shared);
    return;
  }
  kernels::launch(
      b, grid, 1, threads, 4 * sharedWords, /*minBlocksPerSM=*/0,
      [&](ImplicitLocOpBuilder &kb, gpu::LaunchOp launch, Value bytes) {
        if (sharedWords) {
          auto space = gpu::AddressSpaceAttr::get(kb.getContext(),
                                                  gpu::AddressSpace::Workgroup);
          shared = memref::ViewOp::create(
              kb,
              MemRefType::get({sharedWords}, i32, MemRefLayoutAttrInterface(),
                              space),
              bytes, cst(kb, 0), ValueRange{});
        }
        for (auto [i, phase] : llvm::enumerate(phases)) {
          if (i)
            gpu::BarrierOp::create(kb);
          phase(kb, launch.getBlockIds().x, launch.getThreadIds().x);
        }
      });
}

/// for i = first; i < n; i += step: body(i).
void strided(ImplicitLocOpBuilder &b, Value first, int64_t n, Value step,
             llvm::function_ref<void(ImplicitLocOpBuilder &, Value)> body) {
  scf::ForOp::create(b, first, cst(b, n), step, ValueRange{},
                     [&](OpBuilder &nested, Location loc, Value i, ValueRange) {
                       ImplicitLocOpBuilder ib(loc, nested);
                       body(ib, i);
                       scf::YieldOp::create(ib);
                     });
}

/// Runs `body` when `cond` holds.
void when(ImplicitLocOpBuilder &b, Value cond,
          llvm::function_ref<void(ImplicitLocOpBuilder &)> body) {
  scf::IfOp::create(b, cond, [&](OpBuilder &then, Location loc) {
    ImplicitLocOpBuilder tb(loc, then);
    body(tb);
    scf::YieldOp::create(tb);
  });
}

Value toI32(ImplicitLocOpBuilder &b, Value v) {
  return arith::IndexCastOp::create(b, b.getI32Type(), v);
}
Value cmp(ImplicitLocOpBuilder &b, arith::CmpIPredicate pred, Value x,
          Value y) {
  return arith::CmpIOp::create(b, pred, x, y);
}

/// The two kernels of one moe.place_rows_buffers.
class PlaceRows {
public:
  PlaceRows(PlaceRowsBuffersOp op, bool hostLoops)
      : op(op), hostLoops(hostLoops) {
    ArrayRef<int64_t> choices = op.getExperts().getType().getShape();
    tokens = choices[0];
    k = choices[1];
    numExperts = op.getCounts().getType().getDimSize(0);
    rows = op.getRowToken().getType().getDimSize(0);
    groupSize = op.getGroupSize();
    groups = tokens / groupSize;
    // The chunk's k experts per position stay within the 48 KiB of shared
    // memory a block gets without opting in.
    chunk =
        std::min({kChunk, groupSize, std::max<int64_t>(1, kSharedWords / k)});
    chunksPerGroup = (groupSize + chunk - 1) / chunk;
  }

  void build(OpBuilder &builder) {
    ImplicitLocOpBuilder b(op.getLoc(), builder);
    Type i64 = b.getI64Type();
    int64_t chunks = groups * chunksPerGroup;
    count = alloc(b, {chunks * k * numExperts}, i64);
    start = alloc(b, {chunks * k * numExperts}, i64);
    within = alloc(b, {tokens * k}, i64);
    kept = alloc(b, {groups * numExperts}, i64);
    earlier = alloc(b, {groups * numExperts}, i64);
    Value shared;
    blockKernel(b, hostLoops, chunks, chunk, k * chunk, shared,
                {[&](ImplicitLocOpBuilder &b, Value c, Value tid) {
                   loadChunk(b, c, tid, shared);
                 },
                 [&](ImplicitLocOpBuilder &b, Value c, Value tid) {
                   countChunk(b, c, tid, shared);
                 }});
    Value none;
    blockKernel(b, hostLoops, 1, kPlaceThreads, 0, none,
                {[&](ImplicitLocOpBuilder &b, Value, Value tid) {
                   startsAndKept(b, tid);
                 },
                 [&](ImplicitLocOpBuilder &b, Value, Value tid) {
                   earlierAndCounts(b, tid);
                 },
                 [&](ImplicitLocOpBuilder &b, Value, Value tid) {
                   expertOffsets(b, tid);
                 },
                 [&](ImplicitLocOpBuilder &b, Value, Value tid) {
                   placeRows(b, tid);
                 }});
    for (Value buffer : {count, start, within, kept, earlier})
      memref::DeallocOp::create(b, buffer);
  }

private:
  Value alloc(ImplicitLocOpBuilder &b, ArrayRef<int64_t> shape, Type elt) {
    return memref::AllocOp::create(b, MemRefType::get(shape, elt));
  }
  Value i64(ImplicitLocOpBuilder &b, int64_t v) {
    return arith::ConstantIntOp::create(b, v, 64);
  }
  /// The token at ranking position `pos`.
  Value tokenAt(ImplicitLocOpBuilder &b, Value pos) {
    return op.getOrder() ? toIndex(b, load(b, op.getOrder(), {pos})) : pos;
  }
  /// Count cell (global chunk c of group g, choice rank j, expert e): the
  /// cells of one (g, e) are contiguous, in the order the place kernel
  /// scans them (rank, then chunk), so that its thread for (g, e) reads
  /// consecutive words.
  Value cellOf(ImplicitLocOpBuilder &b, Value c, Value j, Value ex) {
    Value g = div(b, c, chunksPerGroup);
    Value groupExpert = add(b, mul(b, g, numExperts), ex);
    Value rank = add(b, mul(b, groupExpert, k), j);
    return add(b, mul(b, rank, chunksPerGroup), rem(b, c, chunksPerGroup));
  }
  /// The first ranking position of global chunk c and its length.
  std::pair<Value, Value> chunkBounds(ImplicitLocOpBuilder &b, Value c) {
    Value groupStart = mul(b, div(b, c, chunksPerGroup), groupSize);
    Value lo = add(b, groupStart, mul(b, rem(b, c, chunksPerGroup), chunk));
    Value hi = arith::MinUIOp::create(b, add(b, lo, cst(b, chunk)),
                                      add(b, groupStart, cst(b, groupSize)));
    return {lo, arith::SubIOp::create(b, hi, lo)};
  }

  /// chunk kernel, phase 1: shared[j · chunk + tid] = the expert of the
  /// position's choice j; the chunk's counts zeroed; a share of the rows
  /// cleared.
  void loadChunk(ImplicitLocOpBuilder &b, Value c, Value tid, Value shared) {
    Value lo, length;
    std::tie(lo, length) = chunkBounds(b, c);
    when(b, cmp(b, arith::CmpIPredicate::ult, tid, length),
         [&](ImplicitLocOpBuilder &b) {
           Value t = tokenAt(b, add(b, lo, tid));
           forEach(b, cst(b, 0), cst(b, k),
                   [&](ImplicitLocOpBuilder &b, Value j) {
                     store(b, load(b, op.getExperts(), {t, j}), shared,
                           {add(b, mul(b, j, chunk), tid)});
                   });
         });
    strided(b, tid, k * numExperts, cst(b, chunk),
            [&](ImplicitLocOpBuilder &b, Value i) {
              Value cell = cellOf(b, c, rem(b, i, k), div(b, i, k));
              store(b, i64(b, 0), count, {cell});
            });
    int64_t threads = groups * chunksPerGroup * chunk;
    strided(b, add(b, mul(b, c, chunk), tid), rows, cst(b, threads),
            [&](ImplicitLocOpBuilder &b, Value r) {
              store(b, arith::ConstantIntOp::create(b, -1, 32),
                    op.getRowToken(), {r});
              store(b,
                    arith::ConstantFloatOp::create(b, b.getF32Type(),
                                                   APFloat(0.0f)),
                    op.getRowGate(), {r});
            });
  }

  /// chunk kernel, phase 2: per choice rank j of the thread's position, the
  /// same-expert assignments before it in the chunk (into `within`); the
  /// last of them stores the chunk's count of (j, expert).
  void countChunk(ImplicitLocOpBuilder &b, Value c, Value tid, Value shared) {
    Value lo, length;
    std::tie(lo, length) = chunkBounds(b, c);
    when(
        b, cmp(b, arith::CmpIPredicate::ult, tid, length),
        [&](ImplicitLocOpBuilder &b) {
          Value pos = add(b, lo, tid);
          forEach(
              b, cst(b, 0), cst(b, k), [&](ImplicitLocOpBuilder &b, Value j) {
                Emitter s(b.getLoc(), b);
                Value row = mul(b, j, chunk);
                Value mine = load(b, shared, {add(b, row, tid)});
                // (same expert before, same expert after)
                SmallVector<Value> seen = s.loop(
                    length, {s.i64(0), s.boolean(false)},
                    [&](ImplicitLocOpBuilder &b, Value q, ValueRange acc) {
                      Value same = cmp(b, arith::CmpIPredicate::eq,
                                       load(b, shared, {add(b, row, q)}), mine);
                      Value before = arith::AndIOp::create(
                          b, same, cmp(b, arith::CmpIPredicate::ult, q, tid));
                      Value after = arith::AndIOp::create(
                          b, same, cmp(b, arith::CmpIPredicate::ugt, q, tid));
                      return SmallVector<Value>{
                          arith::AddIOp::create(b, acc[0],
                                                arith::ExtUIOp::create(
                                                    b, b.getI64Type(), before)),
                          arith::OrIOp::create(b, acc[1], after)};
                    });
                store(b, seen[0], within, {add(b, mul(b, pos, k), j)});
                Value last = arith::XOrIOp::create(b, seen[1], s.boolean(true));
                when(b, last, [&](ImplicitLocOpBuilder &b) {
                  store(b, arith::AddIOp::create(b, seen[0], i64(b, 1)), count,
                        {cellOf(b, c, j, toIndex(b, mine))});
                });
              });
        });
  }

  /// place kernel, phase 1: per (group g, expert e), the start of every
  /// (rank j, chunk) count among the group's assignments to e (earlier
  /// ranks first, then earlier chunks), and the kept total.
  void startsAndKept(ImplicitLocOpBuilder &b, Value tid) {
    strided(b, tid, groups * numExperts, cst(b, kPlaceThreads),
            [&](ImplicitLocOpBuilder &b, Value i) {
              Emitter s(b.getLoc(), b);
              // The (g, e) cells: i · k · nc + (rank · nc + chunk).
              Value first = mul(b, i, k * chunksPerGroup);
              Value total =
                  s.loop(k * chunksPerGroup, {s.i64(0)},
                         [&](ImplicitLocOpBuilder &b, Value n, ValueRange run) {
                           Value cell = add(b, first, n);
                           store(b, run[0], start, {cell});
                           return SmallVector<Value>{arith::AddIOp::create(
                               b, run[0], load(b, count, {cell}))};
                         })[0];
              if (std::optional<int64_t> capacity = op.getCapacity())
                total = arith::MinSIOp::create(b, total, i64(b, *capacity));
              store(b, total, kept, {i});
            });
  }

  /// place kernel, phase 2: per expert, the kept rows of the groups before
  /// each group, and its count.
  void earlierAndCounts(ImplicitLocOpBuilder &b, Value tid) {
    strided(b, tid, numExperts, cst(b, kPlaceThreads),
            [&](ImplicitLocOpBuilder &b, Value ex) {
              Emitter s(b.getLoc(), b);
              Value total =
                  s.loop(groups, {s.i64(0)},
                         [&](ImplicitLocOpBuilder &b, Value g, ValueRange run) {
                           Value at = add(b, mul(b, g, numExperts), ex);
                           store(b, run[0], earlier, {at});
                           return SmallVector<Value>{arith::AddIOp::create(
                               b, run[0], load(b, kept, {at}))};
                         })[0];
              store(b, total, op.getCounts(), {ex});
            });
  }

  /// place kernel, phase 3: offsets[e] = the counts before e, each rounded
  /// up to a multiple of the block.
  void expertOffsets(ImplicitLocOpBuilder &b, Value tid) {
    int64_t block = op.getBlock();
    strided(b, tid, numExperts + 1, cst(b, kPlaceThreads),
            [&](ImplicitLocOpBuilder &b, Value ex) {
              Emitter s(b.getLoc(), b);
              Value total = s.loop(
                  ex, {s.i64(0)},
                  [&](ImplicitLocOpBuilder &b, Value before, ValueRange run) {
                    Value n = load(b, op.getCounts(), {before});
                    if (block != 1) {
                      Value blk = i64(b, block);
                      n = arith::MulIOp::create(
                          b, arith::CeilDivUIOp::create(b, n, blk), blk);
                    }
                    return SmallVector<Value>{
                        arith::AddIOp::create(b, run[0], n)};
                  })[0];
              store(b, total, op.getOffsets(), {ex});
            });
  }

  /// place kernel, phase 4: assignment (position p, rank j) of token t.
  void placeRows(ImplicitLocOpBuilder &b, Value tid) {
    std::optional<int64_t> capacity = op.getCapacity();
    std::string rowCheck =
        op.getRowCheck() ? op.getRowCheck()->str() : std::string();
    strided(b, tid, tokens * k, cst(b, kPlaceThreads),
            [&](ImplicitLocOpBuilder &b, Value i) {
              Value p = div(b, i, k), j = rem(b, i, k);
              Value t = tokenAt(b, p);
              Value ex = toIndex(b, load(b, op.getExperts(), {t, j}));
              Value g = div(b, p, groupSize);
              Value c = add(b, mul(b, g, chunksPerGroup),
                            div(b, rem(b, p, groupSize), chunk));
              Value chunkStart = load(b, start, {cellOf(b, c, j, ex)});
              Value slot =
                  arith::AddIOp::create(b, chunkStart, load(b, within, {i}));
              Value isKept =
                  capacity ? cmp(b, arith::CmpIPredicate::slt, slot,
                                 i64(b, *capacity))
                           : arith::ConstantIntOp::create(b, 1, 1).getResult();
              store(b, isKept, op.getKeep(), {t, j});
              when(b, isKept, [&](ImplicitLocOpBuilder &b) {
                Value offset = load(b, op.getOffsets(), {ex});
                Value before =
                    load(b, earlier, {add(b, mul(b, g, numExperts), ex)});
                Value row = arith::AddIOp::create(
                    b, arith::AddIOp::create(b, offset, before), slot);
                Value at = toIndex(b, row);
                assertInRange(b, at, 0, rows, rowCheck);
                store(b, toI32(b, t), op.getRowToken(), {at});
                store(b, load(b, op.getGates(), {t, j}), op.getRowGate(), {at});
              });
            });
  }

  PlaceRowsBuffersOp op;
  bool hostLoops;
  int64_t tokens, k, numExperts, rows, groupSize, groups, chunk, chunksPerGroup;
  // Scratch: per (chunk, j, e) count and start; per assignment the
  // same-expert assignments before it in its chunk; per (group, expert)
  // the kept rows and those of the earlier groups.
  Value count, start, within, kept, earlier;
};

struct PlaceRowsToGpuPass
    : mlir::moe::impl::MoEPlaceRowsToGpuBase<PlaceRowsToGpuPass> {
  using MoEPlaceRowsToGpuBase::MoEPlaceRowsToGpuBase;

  void runOnOperation() override {
    SmallVector<PlaceRowsBuffersOp> ops;
    getOperation()->walk([&](PlaceRowsBuffersOp op) { ops.push_back(op); });
    for (PlaceRowsBuffersOp op : ops) {
      OpBuilder builder(op);
      PlaceRows(op, hostLoops).build(builder);
      op.erase();
    }
  }
};

} // namespace
