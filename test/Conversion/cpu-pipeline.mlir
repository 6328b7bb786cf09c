// moe-cpu-pipeline takes a whole layer to the LLVM dialect only, with a C
// interface whose results became out-params; w_in and w_out (arguments 2
// and 3) are taken in the kernels' panel layout (16 columns per panel with
// 256-bit vectors: two vectors of 8).
// RUN: moe-opt %s --moe-cpu-pipeline="vector-bits=256 registers=16" | FileCheck %s

// CHECK-NOT: moe.
// CHECK-NOT: linalg.
// CHECK-NOT: scf.
// CHECK-NOT: tensor.
// CHECK-NOT: memref.
// CHECK: llvm.func @moe_layer(
// CHECK-NOT: -> !llvm.struct
// CHECK-SAME: attributes {llvm.emit_c_interface, moe.packed_weights = array<i64: 2, 16, 3, 16>}
// CHECK: llvm.func @_mlir_ciface_moe_layer(%{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr)
func.func @moe_layer(%x: tensor<8x16xf32>, %r: tensor<4x16xf32>, %wi: tensor<4x16x32xbf16>, %wo: tensor<4x32x16xbf16>)
    -> (tensor<8x16xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>) {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation gelu normalize_gates capacity_factor 1.0 group_size 4 priority batch_prioritized
      : tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x16x32xbf16>, tensor<4x32x16xbf16>
  return %y, %t, %d, %lb, %z : tensor<8x16xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>
}
