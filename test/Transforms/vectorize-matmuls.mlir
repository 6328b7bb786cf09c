// moe-vectorize-matmuls: static matmuls are outlined into kernels, tiled
// (columns outermost), vectorized with the accumulator kept in registers
// across the reduction loop, and lowered to FMAs; dynamic ones stay.
// RUN: moe-opt %s -split-input-file --moe-vectorize-matmuls=threads=1 | FileCheck %s
// RUN: moe-opt %s -split-input-file --moe-vectorize-matmuls=threads=3 | FileCheck %s --check-prefix=THREADS

// CHECK-LABEL: func @batched
// CHECK: %[[R:.*]] = call @__moe_matmul_0(%{{.*}}, %{{.*}}, %{{.*}}) : (tensor<2x16x64xf32>, tensor<2x64x96xbf16>, tensor<2x16x96xf32>) -> tensor<2x16x96xf32>
// CHECK: return %[[R]]
// CHECK: func.func private @__moe_matmul_0
// CHECK-NOT: linalg.batch_matmul
// CHECK: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %{{.*}} iter_args
// CHECK: scf.for %[[N:.*]] = %c0 to %c96 step %c32 iter_args
// CHECK: scf.for %[[M:.*]] = %c0 to %c16 step %c8 iter_args
// CHECK: %[[ACC:.*]] = vector.transfer_read {{.*}} : tensor<1x16x32xf32>, vector<1x8x32xf32>
// CHECK: scf.for %{{.*}} = %c0 to %c64 step %c1 iter_args(%{{.*}} = %{{.*}}, %{{.*}} = %[[ACC]])
// CHECK: vector.transfer_read {{.*}} : tensor<2x64x96xbf16>, vector<1x1x32xbf16>
// CHECK: vector.fma {{.*}} : vector<32xf32>
// CHECK: scf.yield {{.*}} vector<1x8x32xf32>
// CHECK: vector.transfer_write
// With 3 threads the 96 columns split into 3 blocks of 32 first, each a
// single column tile.
// THREADS-LABEL: func.func private @__moe_matmul_0
// THREADS: scf.forall (%{{.*}}) in (3) shared_outs
// THREADS-SAME: tensor<2x16x96xf32>
// THREADS: scf.for {{.*}} -> (tensor<2x16x32xf32>)
func.func @batched(%a: tensor<2x16x64xf32>, %b: tensor<2x64x96xbf16>) -> tensor<2x16x96xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<2x16x96xf32>
  %c = linalg.fill ins(%zero : f32) outs(%e : tensor<2x16x96xf32>) -> tensor<2x16x96xf32>
  %r = linalg.batch_matmul ins(%a, %b : tensor<2x16x64xf32>, tensor<2x64x96xbf16>) outs(%c : tensor<2x16x96xf32>) -> tensor<2x16x96xf32>
  return %r : tensor<2x16x96xf32>
}

// -----

// A slice operand is sliced inside the kernel: the call passes the whole
// weight tensor and the index.
// CHECK-LABEL: func @sliced
// CHECK: call @__moe_matmul_0(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) : (tensor<6x16xf32>, tensor<4x16x8xf32>, index, tensor<6x8xf32>)
// CHECK: func.func private @__moe_matmul_0(%{{.*}}: tensor<6x16xf32>, %[[W:.*]]: tensor<4x16x8xf32>, %[[E:.*]]: index
// Odd sizes get the largest dividing tiles: 2 rows, 8 columns (one column
// block, so that loop folds away).
// CHECK: scf.for %{{.*}} = %c0 to %c6 step %c2
// CHECK: scf.for %{{.*}} = %c0 to %c16 step %c1
// CHECK: vector.transfer_read %[[W]][%[[E]], %{{.*}}, %c0]{{.*}} : tensor<4x16x8xf32>, vector<1x8xf32>
func.func @sliced(%a: tensor<6x16xf32>, %w: tensor<4x16x8xf32>, %i: index, %c: tensor<6x8xf32>) -> tensor<6x8xf32> {
  %s = tensor.extract_slice %w[%i, 0, 0] [1, 16, 8] [1, 1, 1] : tensor<4x16x8xf32> to tensor<16x8xf32>
  %r = linalg.matmul ins(%a, %s : tensor<6x16xf32>, tensor<16x8xf32>) outs(%c : tensor<6x8xf32>) -> tensor<6x8xf32>
  return %r : tensor<6x8xf32>
}

// -----

// A long reduction is blocked by 256 outside the row tiles, so a [256, 32]
// weight panel is reused by every row tile.
// CHECK-LABEL: func @blocked
// CHECK: func.func private @__moe_matmul_0
// CHECK: scf.for %{{.*}} = %c0 to %c64 step %c32
// CHECK: scf.for %{{.*}} = %c0 to %c512 step %c256
// CHECK: scf.for %{{.*}} = %c0 to %c16 step %c8
// CHECK: scf.for %{{.*}} = %c0 to %c256 step %c1
func.func @blocked(%a: tensor<16x512xf32>, %b: tensor<512x64xf32>, %c: tensor<16x64xf32>) -> tensor<16x64xf32> {
  %r = linalg.matmul ins(%a, %b : tensor<16x512xf32>, tensor<512x64xf32>) outs(%c : tensor<16x64xf32>) -> tensor<16x64xf32>
  return %r : tensor<16x64xf32>
}

// -----

// CHECK-LABEL: func @dynamic
// CHECK-NOT: call
// CHECK: linalg.matmul
func.func @dynamic(%a: tensor<?x16xf32>, %b: tensor<16x8xf32>, %c: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %r = linalg.matmul ins(%a, %b : tensor<?x16xf32>, tensor<16x8xf32>) outs(%c : tensor<?x8xf32>) -> tensor<?x8xf32>
  return %r : tensor<?x8xf32>
}
