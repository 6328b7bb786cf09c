// Round trip of the fused expert ops: moe.route_rows with and without a
// capacity, batch-prioritized and with a block; moe.sort_by_expert with and
// without a block, moe.grouped_matmul with gather, gate weight and activation, with
// offsets or without, and with the scatter epilogue; moe.grouped_matmul_buffers
// (a scatter that adds into f32, one that stores into bf16: unique_targets);
// moe.place_rows_buffers with and without order, capacity, block, row check.
// RUN: moe-opt %s | moe-opt | FileCheck %s --enable-var-scope

// CHECK-LABEL: func @route_rows
// CHECK: moe.route_rows %{{.*}} k = 2 normalize group_size = 8 capacity = 4 priority = position : tensor<16x4xf32>
// CHECK: moe.route_rows %{{.*}} k = 1 group_size = 16 priority = batch_prioritized block = 8 : tensor<16x4xf32>
// CHECK: return {{.*}} : tensor<16x2xi32>, tensor<16x2xf32>, tensor<16x2xi1>, tensor<4xi64>, tensor<5xi64>, tensor<32xi32>, tensor<32xf32>, tensor<44xi32>
func.func @route_rows(%p: tensor<16x4xf32>)
    -> (tensor<16x2xi32>, tensor<16x2xf32>, tensor<16x2xi1>, tensor<4xi64>,
        tensor<5xi64>, tensor<32xi32>, tensor<32xf32>, tensor<44xi32>) {
  %e, %g, %k, %c, %o, %t, %w = moe.route_rows %p k = 2 normalize
      group_size = 8 capacity = 4 priority = position : tensor<16x4xf32>
  %e1, %g1, %k1, %c1, %o1, %t1, %w1 = moe.route_rows %p k = 1
      group_size = 16 priority = batch_prioritized block = 8 : tensor<16x4xf32>
  return %e, %g, %k, %c, %o, %t, %w, %t1 : tensor<16x2xi32>, tensor<16x2xf32>,
      tensor<16x2xi1>, tensor<4xi64>, tensor<5xi64>, tensor<32xi32>,
      tensor<32xf32>, tensor<44xi32>
}

// CHECK-LABEL: func @sort
// CHECK: moe.sort_by_expert %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1>, tensor<16x2xf32>, tensor<4xi64> -> tensor<5xi64>, tensor<32xi32>, tensor<32xf32>
// CHECK: moe.sort_by_expert %{{.*}} block = 8 : {{.*}} -> tensor<5xi64>, tensor<60xi32>, tensor<60xf32>
func.func @sort(%e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>,
                %g: tensor<16x2xf32>, %c: tensor<4xi64>) {
  %o, %t, %w = moe.sort_by_expert %e, %s, %k, %g, %c
      : tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1>, tensor<16x2xf32>, tensor<4xi64>
      -> tensor<5xi64>, tensor<32xi32>, tensor<32xf32>
  %o8, %t8, %w8 = moe.sort_by_expert %e, %s, %k, %g, %c block = 8
      : tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1>, tensor<16x2xf32>, tensor<4xi64>
      -> tensor<5xi64>, tensor<60xi32>, tensor<60xf32>
  return
}

// CHECK-LABEL: func @grouped
// CHECK-SAME: (%[[X:.*]]: tensor<16x32xbf16>, %[[T:.*]]: tensor<32xi32>, %[[W:.*]]: tensor<4x32x64xbf16>, %[[WG:.*]]: tensor<4x32x64xbf16>, %[[WO:.*]]: tensor<4x64x32xbf16>, %[[O:.*]]: tensor<5xi64>, %[[C:.*]]: tensor<4xi64>, %[[S:.*]]: tensor<32xf32>)
// CHECK: %[[H:.*]] = moe.grouped_matmul %[[X]] gather(%[[T]]) weight(%[[W]]) gate_weight(%[[WG]]) offsets(%[[O]]) counts(%[[C]]) activation swiglu : {{.*}} -> tensor<32x64xf32>
// CHECK: moe.grouped_matmul %[[H]] weight(%[[WO]]) offsets(%[[O]]) counts(%[[C]]) scatter(%[[T]], %[[S]]) : {{.*}} -> tensor<16x32xf32>
// CHECK: moe.grouped_matmul %[[H]] weight(%[[WO]]) counts(%[[C]]) activation relu : {{.*}} -> tensor<32x32xf32>
func.func @grouped(%x: tensor<16x32xbf16>, %t: tensor<32xi32>, %w: tensor<4x32x64xbf16>,
                   %wg: tensor<4x32x64xbf16>, %wo: tensor<4x64x32xbf16>,
                   %o: tensor<5xi64>, %c: tensor<4xi64>, %s: tensor<32xf32>) {
  %h = moe.grouped_matmul %x gather(%t) weight(%w) gate_weight(%wg) offsets(%o)
      counts(%c) activation swiglu
      : tensor<16x32xbf16>, tensor<32xi32>, tensor<4x32x64xbf16>, tensor<4x32x64xbf16>,
        tensor<5xi64>, tensor<4xi64> -> tensor<32x64xf32>
  %y = moe.grouped_matmul %h weight(%wo) offsets(%o) counts(%c) scatter(%t, %s)
      : tensor<32x64xf32>, tensor<4x64x32xbf16>, tensor<5xi64>, tensor<4xi64>,
        tensor<32xi32>, tensor<32xf32> -> tensor<16x32xf32>
  %r = moe.grouped_matmul %h weight(%wo) counts(%c) activation relu
      : tensor<32x64xf32>, tensor<4x64x32xbf16>, tensor<4xi64> -> tensor<32x32xf32>
  return
}

// The buffer form: operands and output are memrefs (any layout).
// CHECK-LABEL: func @grouped_buffers
// CHECK: moe.grouped_matmul_buffers %{{.*}} gather(%{{.*}}) weight(%{{.*}}) gate_weight(%{{.*}}) offsets(%{{.*}}) counts(%{{.*}}) out(%{{.*}}) activation swiglu : memref<16x32xf32, strided<[?, 1], offset: ?>>, memref<32xi32>, memref<4x32x64xbf16>, memref<4x32x64xbf16>, memref<5xi64>, memref<4xi64>, memref<32x64xf32>
// CHECK: moe.grouped_matmul_buffers %{{.*}} weight(%{{.*}}) counts(%{{.*}}) scatter(%{{.*}}, %{{.*}}) out(%{{.*}}) : memref<32x64xf32>, memref<4x64x32xbf16>, memref<4xi64>, memref<32xi32>, memref<32xf32>, memref<16x32xf32>
// CHECK: moe.grouped_matmul_buffers %{{.*}} weight(%{{.*}}) counts(%{{.*}}) scatter(%{{.*}}, %{{.*}}) unique_targets out(%{{.*}}) : memref<32x64xf32>, memref<4x64x32xbf16>, memref<4xi64>, memref<32xi32>, memref<32xf32>, memref<16x32xbf16>
func.func @grouped_buffers(%x: memref<16x32xf32, strided<[?, 1], offset: ?>>, %t: memref<32xi32>,
                           %w: memref<4x32x64xbf16>, %wg: memref<4x32x64xbf16>,
                           %wo: memref<4x64x32xbf16>, %o: memref<5xi64>, %c: memref<4xi64>,
                           %s: memref<32xf32>, %h: memref<32x64xf32>, %y: memref<16x32xf32>,
                           %yb: memref<16x32xbf16>) {
  moe.grouped_matmul_buffers %x gather(%t) weight(%w) gate_weight(%wg) offsets(%o)
      counts(%c) out(%h) activation swiglu
      : memref<16x32xf32, strided<[?, 1], offset: ?>>, memref<32xi32>, memref<4x32x64xbf16>,
        memref<4x32x64xbf16>, memref<5xi64>, memref<4xi64>, memref<32x64xf32>
  moe.grouped_matmul_buffers %h weight(%wo) counts(%c) scatter(%t, %s) out(%y)
      : memref<32x64xf32>, memref<4x64x32xbf16>, memref<4xi64>, memref<32xi32>, memref<32xf32>,
        memref<16x32xf32>
  moe.grouped_matmul_buffers %h weight(%wo) counts(%c) scatter(%t, %s) unique_targets out(%yb)
      : memref<32x64xf32>, memref<4x64x32xbf16>, memref<4xi64>, memref<32xi32>, memref<32xf32>,
        memref<16x32xbf16>
  return
}

// The routing step's counting half on buffers.
// CHECK-LABEL: func @place_rows
// CHECK: moe.place_rows_buffers experts(%{{.*}}) gates(%{{.*}}) order(%{{.*}}) keep(%{{.*}}) counts(%{{.*}}) offsets(%{{.*}}) rows(%{{.*}}, %{{.*}}) group_size = 8 capacity = 3 block = 4 row_check "bad row" : memref<16x2xi32>, memref<16x2xf32>, memref<16xi32>, memref<16x2xi1>, memref<4xi64>, memref<5xi64>, memref<48xi32>, memref<48xf32>
// CHECK: moe.place_rows_buffers experts(%{{.*}}) gates(%{{.*}}) keep(%{{.*}}) counts(%{{.*}}) offsets(%{{.*}}) rows(%{{.*}}, %{{.*}}) group_size = 16 : memref<16x2xi32>
func.func @place_rows(%e: memref<16x2xi32>, %g: memref<16x2xf32>, %o: memref<16xi32>,
                      %k: memref<16x2xi1>, %c: memref<4xi64>, %off: memref<5xi64>,
                      %t: memref<48xi32>, %w: memref<48xf32>) {
  moe.place_rows_buffers experts(%e) gates(%g) order(%o) keep(%k) counts(%c) offsets(%off)
      rows(%t, %w) group_size = 8 capacity = 3 block = 4 row_check "bad row"
      : memref<16x2xi32>, memref<16x2xf32>, memref<16xi32>, memref<16x2xi1>, memref<4xi64>,
        memref<5xi64>, memref<48xi32>, memref<48xf32>
  moe.place_rows_buffers experts(%e) gates(%g) keep(%k) counts(%c) offsets(%off)
      rows(%t, %w) group_size = 16
      : memref<16x2xi32>, memref<16x2xf32>, memref<16x2xi1>, memref<4xi64>,
        memref<5xi64>, memref<48xi32>, memref<48xf32>
  return
}
