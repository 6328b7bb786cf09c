// moe-cpu-pipeline takes a whole layer to the LLVM dialect only, with a C
// interface whose results became out-params.
// RUN: moe-opt %s --moe-cpu-pipeline | FileCheck %s

// CHECK-NOT: moe.
// CHECK-NOT: linalg.
// CHECK-NOT: scf.
// CHECK-NOT: tensor.
// CHECK-NOT: memref.
// CHECK: llvm.func @moe_layer(
// CHECK-NOT: -> !llvm.struct
// CHECK-SAME: attributes {llvm.emit_c_interface}
// CHECK: llvm.func @_mlir_ciface_moe_layer(%{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr)
func.func @moe_layer(%x: tensor<8x16xf32>, %r: tensor<4x16xf32>, %wi: tensor<4x16x32xbf16>, %wo: tensor<4x32x16xbf16>)
    -> (tensor<8x16xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>) {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation gelu normalize_gates capacity_factor 1.0 group_size 4 priority batch_prioritized
      : tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x16x32xbf16>, tensor<4x32x16xbf16>
  return %y, %t, %d, %lb, %z : tensor<8x16xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>
}
