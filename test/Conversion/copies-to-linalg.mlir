// moe-copies-to-linalg: buffer copies become linalg.copy; a copy of a constant
// global holding one value becomes a fill of that value; other globals stay
// host copies.
// RUN: moe-opt %s --moe-copies-to-linalg | FileCheck %s

memref.global "private" constant @zero : memref<4xi64> = dense<0>
memref.global "private" constant @table : memref<2xf32> = dense<[1.0, 2.0]>
memref.global "private" @mutable : memref<4xi64> = dense<7>

// CHECK-LABEL: func @copies
// CHECK-SAME: (%[[A:.*]]: memref<4x8xf32>, %[[B:.*]]: memref<4x8xf32, strided<[16, 1]>>, %[[C:.*]]: memref<4xi64>, %[[D:.*]]: memref<2xf32>)
// CHECK: %[[ZERO:.*]] = arith.constant 0 : i64
// CHECK: linalg.copy ins(%[[A]] : memref<4x8xf32>) outs(%[[B]] : memref<4x8xf32, strided<[16, 1]>>)
// CHECK: linalg.fill ins(%[[ZERO]] : i64) outs(%[[C]] : memref<4xi64>)
// CHECK: %[[T:.*]] = memref.get_global @table
// CHECK: memref.copy %[[T]], %[[D]]
// CHECK: %[[M:.*]] = memref.get_global @mutable
// CHECK: memref.copy %[[M]], %[[C]]
func.func @copies(%a: memref<4x8xf32>, %b: memref<4x8xf32, strided<[16, 1]>>, %c: memref<4xi64>, %d: memref<2xf32>) {
  memref.copy %a, %b : memref<4x8xf32> to memref<4x8xf32, strided<[16, 1]>>
  %z = memref.get_global @zero : memref<4xi64>
  memref.copy %z, %c : memref<4xi64> to memref<4xi64>
  %t = memref.get_global @table : memref<2xf32>
  memref.copy %t, %d : memref<2xf32> to memref<2xf32>
  %m = memref.get_global @mutable : memref<4xi64>
  memref.copy %m, %c : memref<4xi64> to memref<4xi64>
  return
}
