// convert-moe-to-linalg of the spec section 8 ops.
// RUN: moe-opt %s -split-input-file --convert-moe-to-linalg | FileCheck %s
// RUN: moe-opt %s -split-input-file --convert-moe-to-linalg | FileCheck %s --check-prefix=NOMOE
// RUN: moe-opt %s -split-input-file --convert-moe-to-linalg=cpu-kernels=1 | FileCheck %s --check-prefix=CPU

// NOMOE-NOT: moe.

// Sigmoid scores: 1 / (1 + e^-l) elementwise; the log-sum-exp stays.
// CHECK-LABEL: func @sigmoid
// CHECK: linalg.matmul
// CHECK: linalg.generic
// CHECK: arith.negf
// CHECK: math.exp
// CHECK: arith.addf
// CHECK: arith.divf
// CHECK: math.log
func.func @sigmoid(%x: tensor<8x16xf32>, %r: tensor<4x16xf32>) -> (tensor<8x4xf32>, tensor<8xf32>) {
  %l, %s, %lse = moe.route %x, %r score_function sigmoid : tensor<8x16xf32>, tensor<4x16xf32>
  return %s, %lse : tensor<8x4xf32>, tensor<8xf32>
}

// -----

// Choice scores: the bias added per expert; per token the group scores from
// keys where NaN is -inf (the two largest summed, and a NaN sum again -inf),
// `keep` rounds marking the best untaken group, and -inf outside them.
// CHECK-LABEL: func @choice_scores
// CHECK: %[[C:.*]] = linalg.generic {{.*}} ins(%{{.*}}, %{{.*}} : tensor<4x8xf32>, tensor<8xf32>)
// CHECK: arith.addf
// CHECK: %[[NEGINF:.*]] = arith.constant 0xFF800000 : f32
// CHECK: scf.for %[[T:.*]] = {{.*}} iter_args(%[[ACC:.*]] = %[[C]]) -> (tensor<4x8xf32>)
// CHECK: tensor.extract %[[ACC]][%[[T]], %{{.*}}] : tensor<4x8xf32>
// CHECK: arith.cmpf uno
// CHECK: %[[SUM:.*]] = arith.addf %{{.*}}#0, %{{.*}}#1 : f32
// CHECK: arith.cmpf uno, %[[SUM]], %[[SUM]] : f32
// CHECK: %[[G:.*]] = arith.maxsi %{{.*}}#1, %c0{{.*}} : index
// CHECK: tensor.insert %true into %{{.*}}[%[[G]]] : tensor<4xi1>
// CHECK: arith.divui %{{.*}}, %c2
// CHECK: arith.select %{{.*}}, %{{.*}}, %[[NEGINF]] : f32
func.func @choice_scores(%s: tensor<4x8xf32>, %b: tensor<8xf32>) -> tensor<4x8xf32> {
  %c = moe.choice_scores %s bias(%b) num_groups = 4 keep = 2 group_score top2_sum : tensor<4x8xf32>, tensor<8xf32>
  return %c : tensor<4x8xf32>
}

// -----

// Keeping every group: only the bias.
// CHECK-LABEL: func @choice_scores_all_groups
// CHECK: linalg.generic
// CHECK-NOT: scf.for
// CHECK: return
func.func @choice_scores_all_groups(%s: tensor<4x8xf32>, %b: tensor<8xf32>) -> tensor<4x8xf32> {
  %c = moe.choice_scores %s bias(%b) num_groups = 4 keep = 4 group_score max : tensor<4x8xf32>, tensor<8xf32>
  return %c : tensor<4x8xf32>
}

// -----

// Gates from the unbiased scores, normalised by their chosen sum, then scaled.
// CHECK-LABEL: func @top_k_gate_scores
// CHECK-SAME: %[[C:[^:]*]]: tensor<4x8xf32>, %[[S:[^:]*]]: tensor<4x8xf32>
// CHECK: tensor.extract %[[C]]
// CHECK: tensor.extract %[[S]]
// CHECK: arith.divf
// CHECK: %[[SCALE:.*]] = arith.constant 2.500000e+00 : f32
// CHECK: arith.mulf %{{.*}}, %[[SCALE]] : f32
func.func @top_k_gate_scores(%c: tensor<4x8xf32>, %s: tensor<4x8xf32>) -> tensor<4x2xf32> {
  %e, %g = moe.top_k %c k = 2 normalize gate_scores(%s) gate_scale = 2.5 : tensor<4x8xf32>, tensor<4x8xf32>
  return %g : tensor<4x2xf32>
}

// -----

// Expert choice: per group and expert, C rounds of "best token after the
// previous pick"; the pick's slot is g*C + r, its gate scale * p.
// CHECK-LABEL: func @expert_choice
// CHECK: scf.for %[[G:.*]] = %{{.*}} to %c2
// CHECK: scf.for %[[E:.*]] = %{{.*}} to %c8
// CHECK: scf.for %[[R:.*]] = %{{.*}} to %c1
// CHECK: scf.for %{{.*}} = %{{.*}} to %c2
// CHECK: arith.cmpf uno
// CHECK: %[[BASE:.*]] = arith.muli %[[G]], %c1{{.*}} : index
// CHECK: arith.addi %[[BASE]], %[[R]] : index
// CHECK: arith.mulf %{{.*}}, %cst{{.*}} : f32
// CHECK: %[[TWO:.*]] = arith.constant 2 : i64
// CHECK: linalg.fill ins(%[[TWO]] : i64) outs(%{{.*}} : tensor<8xi64>)
func.func @expert_choice(%p: tensor<4x8xf32>) -> (tensor<4x8xi32>, tensor<4x8xf32>, tensor<8xi64>) {
  %e, %s, %k, %g, %c = moe.expert_choice %p group_size = 2 capacity = 1 gate_scale = 2.0 : tensor<4x8xf32>
  return %s, %g, %c : tensor<4x8xi32>, tensor<4x8xf32>, tensor<8xi64>
}

// -----

// Tokens no expert took: "any taken" per row, then the rows without one.
// CHECK-LABEL: func @untaken
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]
// CHECK: arith.ori
// CHECK: linalg.generic
// CHECK: arith.xori
func.func @untaken(%k: tensor<4x8xi1>) -> tensor<i64> {
  %n = moe.count_dropped %k tokens : tensor<4x8xi1>
  return %n : tensor<i64>
}

// -----

// The shared expert: two one-expert grouped matmuls (the activation in the
// first's epilogue, the sigmoid gate as the second's per-row scale through
// its scatter epilogue onto the token rows), then the sum with the routed
// output.
// CPU-LABEL: func @shared_expert
// CPU: %[[N:.*]] = arith.constant dense<4> : tensor<1xi64>
// CPU: %[[WI:.*]] = tensor.expand_shape %{{.*}} {{\[}}[0, 1], [2]] output_shape [1, 16, 24] : tensor<16x24xbf16> into tensor<1x16x24xbf16>
// CPU: %[[H:.*]] = moe.grouped_matmul %{{.*}} weight(%[[WI]]) counts(%[[N]]) activation relu : {{.*}} -> tensor<4x24xf32>
// CPU: %[[DOT:.*]] = linalg.matvec ins(%{{.*}}, %{{.*}} : tensor<4x16xbf16>, tensor<16xbf16>) outs(%{{.*}} : tensor<4xf32>)
// CPU: %[[SCALES:.*]] = linalg.generic {{.*}} ins(%[[DOT]] : tensor<4xf32>)
// CPU: %[[ROWS:.*]] = linalg.generic {{.*}} ins(%[[SCALES]] : tensor<4xf32>)
// CPU: linalg.index 0
// CPU: %[[WO:.*]] = tensor.expand_shape %{{.*}} output_shape [1, 24, 16]
// CPU: %[[OUT:.*]] = moe.grouped_matmul %[[H]] weight(%[[WO]]) counts(%[[N]]) scatter(%[[ROWS]], %[[SCALES]]) : {{.*}} -> tensor<4x16xf32>
// CPU: linalg.generic {{.*}} ins(%{{.*}}, %[[OUT]] : tensor<4x16xbf16>, tensor<4x16xf32>)
// CPU: arith.extf
// CPU: arith.addf
// CPU: arith.truncf
// CHECK-LABEL: func @shared_expert
// CHECK-NOT: moe.
// CHECK: return
func.func @shared_expert(%x: tensor<4x16xbf16>, %y: tensor<4x16xbf16>, %si: tensor<16x24xbf16>,
    %so: tensor<24x16xbf16>, %g: tensor<16xbf16>) -> tensor<4x16xbf16> {
  %o = moe.shared_expert %x, %y w_in(%si) w_out(%so) gate(%g) activation relu
      : tensor<4x16xbf16>, tensor<4x16xbf16>, tensor<16x24xbf16>, tensor<24x16xbf16>, tensor<16xbf16>
  return %o : tensor<4x16xbf16>
}
