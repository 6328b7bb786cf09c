// moe-grouped-matmul-to-gpu on what it has no kernel for: one located error.
// RUN: not moe-opt %s --moe-grouped-matmul-to-gpu 2>&1 | FileCheck %s

// CHECK: grouped-matmul-to-gpu-invalid.mlir:8:3: error: 'moe.grouped_matmul_buffers' op moe-grouped-matmul-to-gpu: no tensor-core kernel for f32 weights (the tensor-core kernel takes bf16 or f16)
func.func @bad(%x: memref<8x64xf32>, %w: memref<2x64x64xf32>, %c: memref<2xi64>, %o: memref<8x64xf32>) {
  // A buffer-form grouped matmul with f32 weights.
  %one = arith.constant 1 : index
  moe.grouped_matmul_buffers %x weight(%w) counts(%c) out(%o) activation relu
      : memref<8x64xf32>, memref<2x64x64xf32>, memref<2xi64>, memref<8x64xf32>
  return
}

// A tile of rows the kernel does not have (tile-rows: 0, 64 or 128).
// RUN: not moe-opt %s --split-input-file --moe-grouped-matmul-to-gpu=tile-rows=96 2>&1 | FileCheck %s --check-prefix=ROWS
// ROWS: error: 'moe.grouped_matmul_buffers' op moe-grouped-matmul-to-gpu: tile-rows must be 0 (chosen per grouped matmul), 64 or 128, not 96
// A reduction step the kernel does not have (max-step-depth: 32 or 64).
// RUN: not moe-opt %s --split-input-file --moe-grouped-matmul-to-gpu=max-step-depth=16 2>&1 | FileCheck %s --check-prefix=DEPTH
// DEPTH: error: 'moe.grouped_matmul_buffers' op moe-grouped-matmul-to-gpu: max-step-depth must be 32 or 64, not 16
// A column tile the kernel does not have (max-tile-cols: 64 or 128).
// RUN: not moe-opt %s --split-input-file --moe-grouped-matmul-to-gpu=max-tile-cols=96 2>&1 | FileCheck %s --check-prefix=COLS
// COLS: error: 'moe.grouped_matmul_buffers' op moe-grouped-matmul-to-gpu: max-tile-cols must be 64 or 128, not 96
// -----
func.func @rows(%x: memref<8x64xbf16>, %w: memref<2x64x64xbf16>, %c: memref<2xi64>, %o: memref<8x64xf32>) {
  moe.grouped_matmul_buffers %x weight(%w) counts(%c) out(%o) activation relu
      : memref<8x64xbf16>, memref<2x64x64xbf16>, memref<2xi64>, memref<8x64xf32>
  return
}
