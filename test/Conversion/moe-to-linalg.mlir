// convert-moe-to-linalg: each moe op becomes upstream tensor-level IR.
// RUN: moe-opt %s -split-input-file --convert-moe-to-linalg | FileCheck %s
// RUN: moe-opt %s -split-input-file --convert-moe-to-linalg | FileCheck %s --check-prefix=NOMOE
// RUN: moe-opt %s -split-input-file --convert-moe-to-linalg=cpu-kernels=1 | FileCheck %s --check-prefix=CPU

// NOMOE-NOT: moe.

// Router: f32 contraction over D (a matmul with the router transposed),
// max / exp / sum / log reductions. With cpu-kernels the contraction is a
// one-expert grouped matmul for the CPU vector kernels.
// CHECK-LABEL: func @route
// CHECK: %[[RT:.*]] = linalg.transpose ins(%{{.*}} : tensor<4x16xbf16>) outs(%{{.*}} : tensor<16x4xbf16>) permutation = [1, 0]
// CHECK: linalg.matmul ins(%{{.*}}, %[[RT]] : tensor<8x16xbf16>, tensor<16x4xbf16>) outs(%{{.*}} : tensor<8x4xf32>)
// CHECK: arith.maximumf
// CPU-LABEL: func @route
// CPU: %[[RT:.*]] = linalg.transpose
// CPU: %[[W:.*]] = tensor.expand_shape %[[RT]] {{\[}}[0, 1], [2]] output_shape [1, 16, 4] : tensor<16x4xbf16> into tensor<1x16x4xbf16>
// CPU: %[[C:.*]] = arith.constant dense<8> : tensor<1xi64>
// CPU: moe.grouped_matmul %{{.*}} weight(%[[W]]) counts(%[[C]]) {{.*}} -> tensor<8x4xf32>
// CHECK: math.exp
// CHECK: arith.divf
// CHECK: math.log
func.func @route(%x: tensor<8x16xbf16>, %r: tensor<4x16xbf16>) -> (tensor<8x4xf32>, tensor<8xf32>) {
  %l, %p, %lse = moe.route %x, %r : tensor<8x16xbf16>, tensor<4x16xbf16>
  return %p, %lse : tensor<8x4xf32>, tensor<8xf32>
}

// -----

// Top-k: a loop over tokens, k rounds, each a scan over the experts.
// CHECK-LABEL: func @top_k
// CHECK: scf.for
// CHECK: scf.for
// CHECK: scf.for
// CHECK: arith.cmpf olt
// CHECK: tensor.insert
// Normalisation divides by the sum of the chosen probabilities.
// CHECK: arith.divf
func.func @top_k(%p: tensor<8x4xf32>) -> (tensor<8x2xi32>, tensor<8x2xf32>) {
  %e, %g = moe.top_k %p k = 2 normalize : tensor<8x4xf32>
  return %e, %g : tensor<8x2xi32>, tensor<8x2xf32>
}

// -----

// Slots with a capacity: groups, choices, tokens; the test against C = 3.
// CHECK-LABEL: func @assign_capacity
// CHECK: scf.for
// CHECK: scf.for
// CHECK: scf.for
// CHECK: %[[C3:.*]] = arith.constant 3 : i64
// CHECK: arith.cmpi slt, %{{.*}}, %[[C3]] : i64
func.func @assign_capacity(%e: tensor<8x2xi32>) -> tensor<8x2xi32> {
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 4 capacity = 3 priority = position : tensor<8x2xi32>
  return %s : tensor<8x2xi32>
}

// -----

// Packed slots under a capacity: the row is the expert's running total over
// groups, and the offsets pass leaves dropped assignments at -1.
// CHECK-LABEL: func @assign_packed_capacity
// CHECK: arith.cmpi slt
// CHECK: arith.select
// CHECK: scf.for
// CHECK: scf.for
// CHECK: tensor.extract %{{.*}} : tensor<8x2xi1>
// CHECK: arith.select
func.func @assign_packed_capacity(%e: tensor<8x2xi32>) -> tensor<8x2xi32> {
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 4 capacity = 3 priority = position packed : tensor<8x2xi32>
  return %s : tensor<8x2xi32>
}

// -----

// Batch-prioritized slots first rank each group's tokens by top-1
// probability.
// CHECK-LABEL: func @assign_bpr
// CHECK: tensor.extract %{{.*}} : tensor<8x4xf32>
// CHECK-DAG: arith.cmpf ogt
// CHECK-DAG: arith.cmpi ult
func.func @assign_bpr(%e: tensor<8x2xi32>, %p: tensor<8x4xf32>) -> tensor<8x2xi1> {
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 capacity = 3 priority = batch_prioritized(%p) : tensor<8x2xi32>, tensor<8x4xf32>
  return %k : tensor<8x2xi1>
}

// -----

// Dispatch: kept rows are inserted into the zeroed buffer.
// CHECK-LABEL: func @dispatch
// CHECK: linalg.fill
// CHECK: scf.for
// CHECK: tensor.extract_slice %{{.*}} : tensor<8x16xf32> to tensor<16xf32>
// CHECK: scf.if
// CHECK: tensor.insert_slice %{{.*}} into %{{.*}}[%{{.*}}, %{{.*}}, 0] [1, 1, 16] [1, 1, 1] : tensor<16xf32> into tensor<4x6x16xf32>
func.func @dispatch(%x: tensor<8x16xf32>, %e: tensor<8x2xi32>, %s: tensor<8x2xi32>, %k: tensor<8x2xi1>) -> tensor<4x6x16xf32> {
  %b = moe.dispatch %x, %e, %s, %k : tensor<8x16xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x2xi1> -> tensor<4x6x16xf32>
  return %b : tensor<4x6x16xf32>
}

// -----

// Padded experts, gated: three batched matmuls accumulating in f32, the
// activation in between, and the result rounded to bf16.
// CHECK-LABEL: func @ffn_padded
// CHECK: linalg.batch_matmul ins(%{{.*}}, %{{.*}} : tensor<4x6x16xbf16>, tensor<4x16x32xbf16>) outs(%{{.*}} : tensor<4x6x32xf32>)
// CHECK: linalg.batch_matmul ins(%{{.*}}, %{{.*}} : tensor<4x6x16xbf16>, tensor<4x16x32xbf16>) outs(%{{.*}} : tensor<4x6x32xf32>)
// CHECK: math.exp
// CHECK: linalg.batch_matmul ins(%{{.*}}, %{{.*}} : tensor<4x6x32xf32>, tensor<4x32x16xbf16>) outs(%{{.*}} : tensor<4x6x16xf32>)
// CHECK: arith.truncf %{{.*}} : f32 to bf16
func.func @ffn_padded(%b: tensor<4x6x16xbf16>, %wi: tensor<4x16x32xbf16>, %wg: tensor<4x16x32xbf16>, %wo: tensor<4x32x16xbf16>) -> tensor<4x6x16xbf16> {
  %o = moe.expert_ffn %b w_in(%wi) w_gate(%wg) w_out(%wo) activation swiglu : tensor<4x6x16xbf16>, tensor<4x16x32xbf16>, tensor<4x16x32xbf16>, tensor<4x32x16xbf16>
  return %o : tensor<4x6x16xbf16>
}

// -----

// Packed experts: a loop over experts, then over static chunks of rows of
// the buffer padded by one chunk (here ~4 rows per expert: chunks of 8, the
// count rounded up); only each chunk's valid rows are kept.
// CHECK-LABEL: func @ffn_packed
// CHECK: tensor.insert_slice %{{.*}} into %{{.*}}[0, 0] [16, 16] [1, 1] : tensor<16x16xf32> into tensor<24x16xf32>
// CHECK: scf.for
// CHECK: tensor.extract_slice %{{.*}} : tensor<4x16x32xf32> to tensor<16x32xf32>
// CHECK: arith.ceildivui
// CHECK: scf.for
// CHECK: tensor.extract_slice %{{.*}}[%{{.*}}, 0] [8, 16] [1, 1] : tensor<24x16xf32> to tensor<8x16xf32>
// CHECK: linalg.matmul ins(%{{.*}}, %{{.*}} : tensor<8x16xf32>, tensor<16x32xf32>) outs(%{{.*}} : tensor<8x32xf32>)
// CHECK: arith.maximumf
// CHECK: linalg.matmul ins(%{{.*}}, %{{.*}} : tensor<8x32xf32>, tensor<32x16xf32>) outs(%{{.*}} : tensor<8x16xf32>)
// CHECK: arith.minui
// CHECK: tensor.insert_slice %{{.*}} into %{{.*}}[%{{.*}}, 0] [%{{.*}}, 16] [1, 1] : tensor<?x16xf32> into tensor<24x16xf32>
// CHECK: tensor.extract_slice %{{.*}}[0, 0] [16, 16] [1, 1] : tensor<24x16xf32> to tensor<16x16xf32>
func.func @ffn_packed(%b: tensor<16x16xf32>, %wi: tensor<4x16x32xf32>, %wo: tensor<4x32x16xf32>, %c: tensor<4xi64>) -> tensor<16x16xf32> {
  %o = moe.expert_ffn %b w_in(%wi) w_out(%wo) counts(%c) activation relu : tensor<16x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>, tensor<4xi64>
  return %o : tensor<16x16xf32>
}

// -----

// Combine: a reduction over the choices that gathers buffer rows.
// CHECK-LABEL: func @combine
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} ins(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x2xi1>, tensor<8x2xf32>) outs(%{{.*}} : tensor<8x16xf32>)
// CHECK: linalg.index 1
// CHECK: tensor.extract %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}] : tensor<4x6x16xf32>
// CHECK: arith.select
func.func @combine(%b: tensor<4x6x16xf32>, %e: tensor<8x2xi32>, %s: tensor<8x2xi32>, %k: tensor<8x2xi1>, %g: tensor<8x2xf32>) -> tensor<8x16xf32> {
  %y = moe.combine %b, %e, %s, %k, %g : tensor<4x6x16xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x2xi1>, tensor<8x2xf32>
  return %y : tensor<8x16xf32>
}

// -----

// Statistics accumulate in f64 (losses) and i64 (drops).
// CHECK-LABEL: func @stats
// CHECK: arith.extf %{{.*}} : f32 to f64
// CHECK: arith.truncf %{{.*}} : f64 to f32
// CHECK: arith.extf %{{.*}} : f32 to f64
// CHECK: arith.truncf %{{.*}} : f64 to f32
// CHECK: arith.xori
func.func @stats(%p: tensor<8x4xf32>, %e: tensor<8x2xi32>, %lse: tensor<8xf32>, %k: tensor<8x2xi1>) -> (tensor<f32>, tensor<f32>, tensor<i64>) {
  %lb = moe.load_balance_loss %p, %e group_size = 4 : tensor<8x4xf32>, tensor<8x2xi32>
  %z = moe.router_z_loss %lse : tensor<8xf32>
  %d = moe.count_dropped %k : tensor<8x2xi1>
  return %lb, %z, %d : tensor<f32>, tensor<f32>, tensor<i64>
}

// -----

// A whole layer is decomposed on the way.
// CHECK-LABEL: func @layer
// CHECK: linalg.batch_matmul
func.func @layer(%x: tensor<8x16xf32>, %r: tensor<4x16xf32>, %wi: tensor<4x16x32xf32>, %wo: tensor<4x32x16xf32>) -> tensor<8x16xf32> {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 1 activation relu expert_capacity 2 priority position
      : tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>
  return %y : tensor<8x16xf32>
}
