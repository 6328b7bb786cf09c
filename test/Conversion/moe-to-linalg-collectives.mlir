// Exchanges between ranks become calls of the runtime's C entry points on
// buffers; over one rank they are the identity.
// RUN: moe-opt %s --convert-moe-to-linalg | FileCheck %s

// CHECK-DAG: func.func private @moe_rt_all_to_all_bf16(memref<*xbf16>, memref<*xbf16>, i64, i64, i64) attributes {llvm.emit_c_interface}
// CHECK-DAG: func.func private @moe_rt_all_reduce_i64(memref<*xi64>, i64) attributes {llvm.emit_c_interface}
// CHECK-DAG: func.func private @moe_rt_exchange_rows_f32(memref<*xf32>, memref<*xi64>, memref<*xf32>, memref<*xi64>, i64) attributes {llvm.emit_c_interface}
// CHECK-DAG: func.func private @moe_rt_return_rows_f32(memref<*xf32>, memref<*xi64>, memref<*xi64>, memref<*xf32>, i64) attributes {llvm.emit_c_interface}

// CHECK-LABEL: func @exchange
// CHECK-SAME: (%[[B:.*]]: tensor<4x6x16xbf16>)
// CHECK: %[[SRC:.*]] = bufferization.to_buffer %[[B]] read_only : tensor<4x6x16xbf16> to memref<4x6x16xbf16>
// CHECK: %[[DST:.*]] = memref.alloc() : memref<2x12x16xbf16>
// CHECK: %[[SU:.*]] = memref.cast %[[SRC]] : memref<4x6x16xbf16> to memref<*xbf16>
// CHECK: %[[DU:.*]] = memref.cast %[[DST]] : memref<2x12x16xbf16> to memref<*xbf16>
// CHECK: call @moe_rt_all_to_all_bf16(%[[SU]], %[[DU]], %{{.*}}, %{{.*}}, %{{.*}})
// CHECK: %[[R:.*]] = bufferization.to_tensor %[[DST]] restrict writable
// CHECK: return %[[R]], %[[B]]
func.func @exchange(%b: tensor<4x6x16xbf16>) -> (tensor<2x12x16xbf16>, tensor<4x6x16xbf16>) {
  %r = moe.all_to_all %b ranks = 2 split_dim = 0 concat_dim = 1 : tensor<4x6x16xbf16>
  %same = moe.all_to_all %b ranks = 1 split_dim = 0 concat_dim = 1 : tensor<4x6x16xbf16>
  return %r, %same : tensor<2x12x16xbf16>, tensor<4x6x16xbf16>
}

// The sum is computed in place on a copy.
// CHECK-LABEL: func @sum
// CHECK: %[[IN:.*]] = bufferization.to_buffer %{{.*}} read_only
// CHECK: %[[COPY:.*]] = memref.alloc() : memref<8xi64>
// CHECK: memref.copy %[[IN]], %[[COPY]]
// CHECK: call @moe_rt_all_reduce_i64(%{{.*}}, %{{.*}}) : (memref<*xi64>, i64) -> ()
// CHECK: bufferization.to_tensor %[[COPY]] restrict writable
func.func @sum(%c: tensor<8xi64>) -> tensor<8xi64> {
  %r = moe.all_reduce %c ranks = 4 : tensor<8xi64>
  return %r : tensor<8xi64>
}

// Gathers fill a buffer N times as tall; the rank comes from the runtime.
// CHECK-LABEL: func @gather_and_rank
// CHECK: %[[DST:.*]] = memref.alloc() : memref<16x2xi32>
// CHECK: call @moe_rt_all_gather_i32(%{{.*}}, %{{.*}}, %{{.*}}) : (memref<*xi32>, memref<*xi32>, i64) -> ()
// CHECK: bufferization.to_tensor %[[DST]] restrict writable
// CHECK: %[[R:.*]] = call @moe_rt_rank(%{{.*}}) : (i64) -> i64
// CHECK: arith.index_cast %[[R]] : i64 to index
func.func @gather_and_rank(%e: tensor<8x2xi32>) -> (tensor<16x2xi32>, index) {
  %all = moe.all_gather %e ranks = 2 : tensor<8x2xi32>
  %r = moe.rank ranks = 2
  return %all, %r : tensor<16x2xi32>, index
}

// The variable-size exchange: operands' buffers in, one fresh buffer per
// result, the ranks last (declarations checked at the top).
// CHECK-LABEL: func @rows
// CHECK-DAG: %[[ROWS:.*]] = memref.alloc() : memref<64x16xf32>
// CHECK-DAG: %[[GOT:.*]] = memref.alloc() : memref<2x2xi64>
// CHECK: call @moe_rt_exchange_rows_f32(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}})
// CHECK: %[[BACK:.*]] = memref.alloc() : memref<32x16xf32>
// CHECK: call @moe_rt_return_rows_f32(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}})
// CHECK: bufferization.to_tensor %[[BACK]] restrict writable
func.func @rows(%b: tensor<32x16xf32>, %c: tensor<4xi64>) -> tensor<32x16xf32> {
  %rows, %got = moe.exchange_rows %b, %c ranks = 2 : tensor<32x16xf32>, tensor<4xi64> -> tensor<64x16xf32>, tensor<2x2xi64>
  %back = moe.return_rows %rows, %got, %c ranks = 2 : tensor<64x16xf32>, tensor<2x2xi64>, tensor<4xi64> -> tensor<32x16xf32>
  return %back : tensor<32x16xf32>
}
