// The fused CPU program holds no dispatch buffer: after the CPU pipeline's
// front stages and bufferization, no [T·k, D] = [32, 32] copy of the tokens
// (nor a [32, 32] per-expert output) is allocated; the up projection's
// reduction loop loads each operand element from the token matrix at the row
// the sorted index gives. Without fusion the dispatch buffer is there.
// RUN: moe-opt %s --canonicalize --moe-decompose=packed-capacity=1 --canonicalize --moe-fuse-experts --moe-grouped-matmul-to-vector="vector-bits=256 registers=16" --convert-moe-to-linalg --one-shot-bufferize="bufferize-function-boundaries=1 function-boundary-type-conversion=identity-layout-map" | FileCheck %s --enable-var-scope
// RUN: moe-opt %s --canonicalize --moe-decompose=packed-capacity=1 --canonicalize --convert-moe-to-linalg --one-shot-bufferize="bufferize-function-boundaries=1 function-boundary-type-conversion=identity-layout-map" | FileCheck %s --check-prefix=UNFUSED

// CHECK-LABEL: func @moe_layer
// CHECK-SAME: (%[[X:[a-z0-9]+]]: memref<16x32xf32>
// CHECK-NOT: memref<32x32xf32>
// The expert-sorted token of each row, then the up projection's kernel
// reading the tokens and that index in place.
// CHECK: memref.alloc() {{.*}}: memref<32xi32>
// CHECK: %[[XV:.*]] = memref.cast %[[X]] : memref<16x32xf32> to memref<16x32xf32, strided<[?, 1], offset: ?>>
// CHECK: %[[TOKENS:.*]] = memref.cast %{{.*}} : memref<32xi32> to memref<32xi32, strided<[1], offset: ?>>
// CHECK: %[[H:.*]] = memref.alloc() : memref<32x64xf32>
// CHECK: scf.parallel
// CHECK: %[[ROW:.*]] = memref.load %[[TOKENS]][%{{.*}}]
// CHECK: %[[SRC:.*]] = arith.index_cast %[[ROW]] : i32 to index
// CHECK: scf.for %[[K:.*]] = {{.*}} iter_args
// CHECK: memref.load %[[XV]][%[[SRC]], %[[K]]]
// CHECK: vector.fma
// The down projection adds into the output rows.
// CHECK: %[[Y:.*]] = memref.alloc() : memref<16x32xf32>
// CHECK: vector.load %[[Y]]
// CHECK: vector.store %{{.*}}, %[[Y]]
// CHECK-NOT: memref<32x32xf32>
// CHECK: return

// UNFUSED-LABEL: func @moe_layer
// UNFUSED: memref.alloc() {{.*}}: memref<32x32xf32>
func.func @moe_layer(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>,
    %wi: tensor<4x32x64xf32>, %wg: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>)
    -> (tensor<16x32xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>) {
  %y, %tpe, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_gate(%wg) w_out(%wo)
      top_k 2 activation swiglu normalize_gates capacity_factor 1.25
      group_size 8 priority position
      : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return %y, %tpe, %d, %lb, %z : tensor<16x32xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>
}
