//===- Passes.td - Conversions out of the moe dialect ------*- tablegen -*-===//
//
// Lowerings of the moe ops to upstream dialects; code in lib/Conversion.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_PASSES_TD
#define MOE_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertMoEToLinalg : Pass<"convert-moe-to-linalg"> {
  let summary = "Lower the moe ops to linalg, tensor, arith, math and scf";
  let description = [{
    Rewrites every moe op into upstream tensor-level IR that one-shot
    bufferization understands. A remaining `moe.layer` is decomposed first
    (as `--moe-decompose` would). Router and expert matmuls become
    `linalg.generic` / `linalg.batch_matmul` / `linalg.matmul` with f32
    accumulation whatever the element types; the softmax, log-sum-exp and
    statistics are linalg reductions (statistics accumulate in f64); top-k
    selection, the priority walk of slot assignment and the dispatch scatter
    are `scf.for` loops over tensors; the combine is a gathering
    `linalg.generic`. `moe.all_to_all` and `moe.all_reduce` over several
    ranks become calls of the runtime's C entry points
    (`moe_rt_all_to_all_<type>`, `moe_rt_all_reduce_<type>`) on buffers.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect", "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect", "::mlir::func::FuncDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::bufferization::BufferizationDialect"
  ];
}

def MoECopiesToLinalg : Pass<"moe-copies-to-linalg"> {
  let summary = "Rewrite memref.copy into linalg.copy";
  let description = [{
    Every `memref.copy` becomes a `linalg.copy` of the same buffers, or, when
    it reads a constant global holding one repeated value, a `linalg.fill` of
    that value (kernels cannot read host globals); copies of other globals
    stay. The GPU
    pipeline runs it after bufferization, so that the copies bufferization
    and `buffer-results-to-out-params` insert become parallel loops and then
    GPU kernels like every other linalg op, instead of host calls of MLIR's
    `memrefCopy` on device data.
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect",
                           "::mlir::arith::ArithDialect"];
}

def MoEReductionLoops : Pass<"moe-reduction-loops"> {
  let summary = "Lower linalg reductions on buffers to loops that accumulate "
                "in registers";
  let description = [{
    A `linalg.generic` on buffers with one output whose reduction iterators
    are innermost becomes an `scf.parallel` over its parallel dimensions; in
    each iteration an `scf.for` nest over the reduction dimensions carries the
    running value as an iteration argument, starting from the output's
    value, and the result is stored once. Multiplications and additions of
    the body are marked `contract`, so a multiply-add becomes one fused
    instruction. Upstream's `convert-linalg-to-parallel-loops` reloads and
    stores the output in every reduction step instead: on a GPU a global
    store per multiply-add. The GPU pipeline runs it on generalized linalg
    ops before the remaining ones become parallel loops.
  }];
  let dependentDialects = ["::mlir::scf::SCFDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::affine::AffineDialect",
                           "::mlir::arith::ArithDialect"];
}

#endif // MOE_CONVERSION_PASSES_TD
