// convert-moe-to-linalg{parallel-loops}: the routing step's choice, the
// statistics and the scatter-add as parallel loops over buffers, (blocks of
// 32, lane), each of which the GPU pipeline makes one kernel; the routing
// step's counting and placement as moe.place_rows_buffers (see
// place-rows-to-gpu.mlir). The numbers these loops
// compute are checked against the float64 reference by the e2e suite
// (--backend gpu-loops, e.g. the bpr_chunks case: several chunks per group).
// RUN: moe-opt %s --convert-moe-to-linalg=parallel-loops=1 --canonicalize | FileCheck %s
// The default lowering walks the tokens in sequence instead.
// RUN: moe-opt %s --convert-moe-to-linalg --canonicalize | FileCheck %s --check-prefix=SEQ

// Two groups of 150 tokens: two chunks of ranking positions each.
// CHECK-LABEL: func.func @route(
// The results' buffers.
// CHECK: %[[E:.*]] = memref.alloc() : memref<300x2xi32>
// CHECK: memref.alloc() : memref<600xf32>
// choose: one element per token (300 = 10 blocks of 32), k rounds of a
// pass over the E experts, and each token's ranking key.
// CHECK: %[[KEYS:.*]] = memref.alloc() : memref<300xf32>
// CHECK: scf.parallel (%{{.*}}, %{{.*}}) = (%c0, %c0) to (%c10, %c32)
// CHECK: scf.for
// CHECK: scf.for
// CHECK: memref.store {{.*}}, %[[KEYS]]
// Each token's position in its group's ranking.
// CHECK: %[[ORDER:.*]] = memref.alloc() : memref<300xi32>
// CHECK: scf.parallel ({{.*}}) = (%c0, %c0) to (%c10, %c32)
// CHECK: memref.store {{.*}}, %[[ORDER]]
// Counting and placement: one op on buffers for moe-place-rows-to-gpu.
// CHECK-NOT: scf.parallel
// CHECK: moe.place_rows_buffers experts(%[[E]]) gates(%{{.*}}) order(%[[ORDER]]) {{.*}} group_size = 150 capacity = 60 :
// CHECK: bufferization.to_tensor %[[E]] restrict writable : memref<300x2xi32>
// Statistics: partial sums per chunk in parallel, then one element.
// CHECK: memref.alloc() : memref<16xf64>
// CHECK: memref.alloc() : memref<f32>
// CHECK: bufferization.to_tensor {{.*}} : memref<f32> to tensor<f32>
// CHECK: memref.alloc() : memref<3xf64>
// CHECK: memref.alloc() : memref<i64>
// CHECK: return

// SEQ-LABEL: func.func @route(
// SEQ-NOT: scf.parallel
// SEQ: return
func.func @route(%probs: tensor<300x4xf32>, %lse: tensor<300xf32>) -> (tensor<300x2xi32>, tensor<300x2xf32>, tensor<300x2xi1>, tensor<4xi64>, tensor<5xi64>, tensor<600xi32>, tensor<600xf32>, tensor<f32>, tensor<f32>, tensor<i64>) {
  %experts, %gates, %keep, %counts, %offsets, %row_token, %row_gate = moe.route_rows %probs k = 2 normalize group_size = 150 capacity = 60 priority = batch_prioritized : tensor<300x4xf32>
  %lb = moe.load_balance_loss %probs, %experts group_size = 150 : tensor<300x4xf32>, tensor<300x2xi32>
  %z = moe.router_z_loss %lse : tensor<300xf32>
  %d = moe.count_dropped %keep : tensor<300x2xi1>
  return %experts, %gates, %keep, %counts, %offsets, %row_token, %row_gate, %lb, %z, %d : tensor<300x2xi32>, tensor<300x2xf32>, tensor<300x2xi1>, tensor<4xi64>, tensor<5xi64>, tensor<600xi32>, tensor<600xf32>, tensor<f32>, tensor<f32>, tensor<i64>
}

// The scatter-add of a grouped matmul the loop lowering takes: every
// element of every owned row at once (48 rows x 16 = 24 blocks of 32), an
// atomic add into the token's row.
// CHECK-LABEL: func.func @scatter(
// CHECK: linalg.fill {{.*}} outs(%[[Y:.*]] : memref<24x16xf32>)
// CHECK: scf.parallel ({{.*}}) = (%c0, %c0) to (%c24, %c32)
// CHECK: scf.if
// CHECK: memref.atomic_rmw addf {{.*}}, %[[Y]][
// CHECK: bufferization.to_tensor %[[Y]] restrict writable
// SEQ-LABEL: func.func @scatter(
// SEQ-NOT: memref.atomic_rmw
// SEQ: return
func.func @scatter(%h: tensor<48x32xf32>, %w: tensor<4x32x16xf32>, %offsets: tensor<5xi64>, %counts: tensor<4xi64>, %token: tensor<48xi32>, %gate: tensor<48xf32>) -> tensor<24x16xf32> {
  %y = moe.grouped_matmul %h weight(%w) offsets(%offsets) counts(%counts) scatter(%token, %gate) : tensor<48x32xf32>, tensor<4x32x16xf32>, tensor<5xi64>, tensor<4xi64>, tensor<48xi32>, tensor<48xf32> -> tensor<24x16xf32>
  return %y : tensor<24x16xf32>
}

// Group-limited choice scores: one token per element (40 tokens = 2 blocks
// of 32); per group, its score and the groups ahead of it (recomputed, no
// per-thread array), then its experts' scores or -inf.
// CHECK-LABEL: func.func @groups(
// CHECK: %[[OUT:.*]] = memref.alloc() : memref<40x8xf32>
// CHECK: scf.parallel ({{.*}}) = (%c0, %c0) to (%c2, %c32)
// CHECK: scf.for {{.*}} to %c4
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (i64)
// CHECK: arith.cmpi slt, {{.*}}, %c2_i64
// CHECK: memref.store {{.*}}, %[[OUT]]
// CHECK: bufferization.to_tensor %[[OUT]] restrict writable
// SEQ-LABEL: func.func @groups(
// SEQ-NOT: scf.parallel
// SEQ: return
func.func @groups(%s: tensor<40x8xf32>, %bias: tensor<8xf32>) -> tensor<40x8xf32> {
  %c = moe.choice_scores %s bias(%bias) num_groups = 4 keep = 2 group_score top2_sum : tensor<40x8xf32>, tensor<8xf32>
  return %c : tensor<40x8xf32>
}

// Expert choice: the results cleared per (token, expert) element, then one
// (group, expert) per element running its C = 3 rounds over the group's 16
// tokens and writing its own column.
// CHECK-LABEL: func.func @ec(
// CHECK: scf.parallel ({{.*}}) = (%c0, %c0) to (%c4, %c32)
// CHECK: memref.store %c-1_i32
// CHECK: scf.parallel
// CHECK: memref.store %c6_i64
// CHECK: scf.parallel
// CHECK: scf.for {{.*}} to %c3
// CHECK: scf.for {{.*}} to %c16
// CHECK: memref.store %true
// SEQ-LABEL: func.func @ec(
// SEQ-NOT: scf.parallel
// SEQ: return
func.func @ec(%p: tensor<32x4xf32>) -> (tensor<32x4xi32>, tensor<32x4xi32>, tensor<32x4xi1>, tensor<32x4xf32>, tensor<4xi64>) {
  %e, %s, %k, %g, %n = moe.expert_choice %p group_size = 16 capacity = 3 : tensor<32x4xf32>
  return %e, %s, %k, %g, %n : tensor<32x4xi32>, tensor<32x4xi32>, tensor<32x4xi1>, tensor<32x4xf32>, tensor<4xi64>
}

// Dispatch into [E, C, D]: one element of one assignment per loop element
// (16 tokens x k 2 x D 8 = 8 blocks of 32), stored when kept.
// CHECK-LABEL: func.func @dispatch(
// CHECK: linalg.fill {{.*}} outs(%[[BUF:.*]] : memref<4x6x8xf32>)
// CHECK: scf.parallel ({{.*}}) = (%c0, %c0) to (%c8, %c32)
// CHECK: scf.if
// CHECK: memref.store {{.*}}, %[[BUF]]
// SEQ-LABEL: func.func @dispatch(
// SEQ-NOT: scf.parallel
// SEQ: return
func.func @dispatch(%x: tensor<16x8xf32>, %e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>) -> tensor<4x6x8xf32> {
  %b = moe.dispatch %x, %e, %s, %k : tensor<16x8xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1> -> tensor<4x6x8xf32>
  return %b : tensor<4x6x8xf32>
}

// moe.route: the logits as one contraction reading the router as [E, D]
// (no transposed copy), then one element per token (40 = 2 blocks of 32)
// for its max, Σ exp, probabilities and log-sum-exp.
// CHECK-LABEL: func.func @router(
// CHECK-NOT: linalg.transpose
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} ins(%{{.*}}, %{{.*}} : tensor<40x16xbf16>, tensor<4x16xbf16>)
// CHECK: arith.extf
// CHECK: %[[P:.*]] = memref.alloc() : memref<40x4xf32>
// CHECK: %[[LSE:.*]] = memref.alloc() : memref<40xf32>
// CHECK: scf.parallel ({{.*}}) = (%c0, %c0) to (%c2, %c32)
// CHECK: arith.maximumf
// CHECK: math.exp
// CHECK: arith.divf
// CHECK: memref.store {{.*}}, %[[P]]
// CHECK: math.log
// CHECK: memref.store {{.*}}, %[[LSE]]
// CHECK-NOT: scf.parallel
// CHECK: return
// SEQ-LABEL: func.func @router(
// SEQ: linalg.transpose
// SEQ-NOT: scf.parallel
// SEQ: return
func.func @router(%x: tensor<40x16xbf16>, %r: tensor<4x16xbf16>) -> (tensor<40x4xf32>, tensor<40x4xf32>, tensor<40xf32>) {
  %l, %p, %lse = moe.route %x, %r : tensor<40x16xbf16>, tensor<4x16xbf16>
  return %l, %p, %lse : tensor<40x4xf32>, tensor<40x4xf32>, tensor<40xf32>
}

// Sigmoid scores: the same loop, σ(l) stored.
// CHECK-LABEL: func.func @sigmoid_router(
// CHECK: scf.parallel
// CHECK: arith.negf
// CHECK: math.exp
// CHECK: arith.divf %cst
// CHECK: math.log
// CHECK-NOT: scf.parallel
// CHECK: return
func.func @sigmoid_router(%x: tensor<40x16xf32>, %r: tensor<4x16xf32>) -> (tensor<40x4xf32>, tensor<40x4xf32>, tensor<40xf32>) {
  %l, %p, %lse = moe.route %x, %r score_function sigmoid : tensor<40x16xf32>, tensor<4x16xf32>
  return %l, %p, %lse : tensor<40x4xf32>, tensor<40x4xf32>, tensor<40xf32>
}

// moe.route feeding moe.route_rows (no gate_scores): the scores of each token
// computed in its element of the choice loop (40 = 2 blocks of 32), so that
// scores and top-k are one kernel; the probabilities and log-sum-exp are still
// stored for the statistics, which read them.
// CHECK-LABEL: func.func @route_and_choose(
// CHECK: %[[P:.*]] = memref.alloc() : memref<40x4xf32>
// CHECK: %[[LSE:.*]] = memref.alloc() : memref<40xf32>
// CHECK: %[[E:.*]] = memref.alloc() : memref<40x2xi32>
// CHECK: scf.parallel ({{.*}}) = (%c0, %c0) to (%c2, %c32)
// CHECK: arith.maximumf
// CHECK: memref.store {{.*}}, %[[P]]
// CHECK: memref.store {{.*}}, %[[LSE]]
// The choice reads the row its element has just stored.
// CHECK: scf.for
// CHECK: memref.load %[[P]]
// CHECK: memref.store {{.*}}, %[[E]]
// CHECK-NOT: scf.parallel
// CHECK: moe.place_rows_buffers experts(%[[E]])
// CHECK: scf.parallel
// CHECK: return
func.func @route_and_choose(%x: tensor<40x16xf32>, %r: tensor<4x16xf32>) -> (tensor<40x2xi32>, tensor<80xi32>, tensor<f32>, tensor<f32>) {
  %l, %p, %lse = moe.route %x, %r : tensor<40x16xf32>, tensor<4x16xf32>
  %experts, %gates, %keep, %counts, %offsets, %row_token, %row_gate = moe.route_rows %p k = 2 normalize group_size = 40 capacity = 30 priority = position : tensor<40x4xf32>
  %lb = moe.load_balance_loss %p, %experts group_size = 40 : tensor<40x4xf32>, tensor<40x2xi32>
  %z = moe.router_z_loss %lse : tensor<40xf32>
  return %experts, %row_token, %lb, %z : tensor<40x2xi32>, tensor<80xi32>, tensor<f32>, tensor<f32>
}

// The same through moe.choice_scores (a score bias and expert groups, the
// sigmoid scores as gate_scores): sigmoid scores, choice scores and top-k of
// a token in one element of one loop.
// CHECK-LABEL: func.func @route_bias_groups(
// CHECK: %[[S:.*]] = memref.alloc() : memref<40x8xf32>
// CHECK: %[[C:.*]] = memref.alloc() : memref<40x8xf32>
// CHECK: %[[E:.*]] = memref.alloc() : memref<40x2xi32>
// CHECK: scf.parallel ({{.*}}) = (%c0, %c0) to (%c2, %c32)
// CHECK: arith.negf
// CHECK: memref.store {{.*}}, %[[S]]
// CHECK: memref.store {{.*}}, %[[C]]
// CHECK: memref.store {{.*}}, %[[E]]
// CHECK-NOT: scf.parallel
// CHECK: moe.place_rows_buffers experts(%[[E]])
// CHECK: return
func.func @route_bias_groups(%x: tensor<40x16xf32>, %r: tensor<8x16xf32>, %bias: tensor<8xf32>) -> (tensor<40x2xi32>, tensor<40x8xf32>) {
  %l, %s, %lse = moe.route %x, %r score_function sigmoid : tensor<40x16xf32>, tensor<8x16xf32>
  %c = moe.choice_scores %s bias(%bias) num_groups = 4 keep = 2 group_score top2_sum : tensor<40x8xf32>, tensor<8xf32>
  %experts, %gates, %keep, %counts, %offsets, %row_token, %row_gate = moe.route_rows %c k = 2 normalize group_size = 40 priority = position gate_scores(%s) : tensor<40x8xf32>, tensor<40x8xf32>
  return %experts, %s : tensor<40x2xi32>, tensor<40x8xf32>
}
