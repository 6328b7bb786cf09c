// The moe-fuse-experts pass: dispatch → expert_ffn → combine on a packed
// buffer becomes sort_by_expert + two grouped matmuls (gather in the first,
// gate scale and scatter-add in the second); a packed expert_ffn that does
// not read a dispatch becomes two grouped matmuls; padded buffers stay.
// RUN: moe-opt %s -split-input-file --moe-decompose=packed-capacity=1 --moe-fuse-experts | FileCheck %s --enable-var-scope
// RUN: moe-opt %s -split-input-file --moe-decompose --moe-fuse-experts | FileCheck %s --check-prefix=PADDED
// RUN: moe-opt %s -split-input-file --moe-decompose=packed-capacity=1 --moe-fuse-experts=block=4 | FileCheck %s --check-prefix=BLOCK
// RUN: not moe-opt %s -split-input-file --moe-fuse-experts=block=0 2>&1 | FileCheck %s --check-prefix=BAD

// Capacity-bounded, gated: no dispatch buffer, w_in and w_gate in one op.
// CHECK-LABEL: func @swiglu
// CHECK-SAME: (%[[X:.*]]: tensor<16x32xf32>, %{{.*}}: tensor<4x32xf32>, %[[WI:.*]]: tensor<4x32x64xf32>, %[[WG:.*]]: tensor<4x32x64xf32>, %[[WO:.*]]: tensor<4x64x32xf32>)
// CHECK: %{{.*}}, %[[P:.*]], %{{.*}} = moe.route
// CHECK-NOT: moe.top_k
// CHECK-NOT: moe.assign_slots
// CHECK-NOT: moe.dispatch
// CHECK: %[[E:.*]], %{{.*}}, %[[K:.*]], %[[C:.*]], %[[O:.*]], %[[T:.*]], %[[RG:.*]] = moe.route_rows %[[P]] k = 2 normalize group_size = 8 capacity = 5 priority = position : tensor<16x4xf32>
// CHECK-NOT: moe.sort_by_expert
// CHECK: %[[H:.*]] = moe.grouped_matmul %[[X]] gather(%[[T]]) weight(%[[WI]]) gate_weight(%[[WG]]) offsets(%[[O]]) counts(%[[C]]) activation swiglu : {{.*}} -> tensor<32x64xf32>
// CHECK: %[[Y:.*]] = moe.grouped_matmul %[[H]] weight(%[[WO]]) offsets(%[[O]]) counts(%[[C]]) scatter(%[[T]], %[[RG]]) {{.*}} -> tensor<16x32xf32>
// CHECK-NOT: moe.expert_ffn
// CHECK-NOT: moe.combine
// CHECK: moe.load_balance_loss %[[P]], %[[E]]
// CHECK: %[[D:.*]] = moe.count_dropped %[[K]]
// CHECK: return %[[Y]], %[[C]], %[[D]]
// PADDED-LABEL: func @swiglu
// PADDED: moe.dispatch {{.*}} -> tensor<4x10x32xf32>
// PADDED: moe.expert_ffn
// PADDED: moe.combine
// PADDED-NOT: moe.grouped_matmul
// PADDED-LABEL: func @bf16_dropless
// BLOCK-LABEL: func @swiglu
// BLOCK: moe.route_rows {{.*}} block = 4 : tensor<16x4xf32>
// BLOCK: moe.grouped_matmul {{.*}} gather(%{{.*}}) {{.*}} : tensor<16x32xf32>, tensor<44xi32>, {{.*}} -> tensor<44x64xf32>
// BLOCK: moe.grouped_matmul {{.*}} : tensor<44x64xf32>, {{.*}} -> tensor<16x32xf32>
// BAD: moe-fuse-experts: 'block' must be at least 1, got 0
func.func @swiglu(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>,
    %wi: tensor<4x32x64xf32>, %wg: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>)
    -> (tensor<16x32xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>) {
  %y, %tpe, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_gate(%wg) w_out(%wo)
      top_k 2 activation swiglu normalize_gates capacity_factor 1.25
      group_size 8 priority position
      : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return %y, %tpe, %d, %lb, %z : tensor<16x32xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>
}

// -----

// bf16 activations: the f32 sum is rounded once, at the end.
// CHECK-LABEL: func @bf16_dropless
// CHECK: moe.route_rows %{{.*}} k = 2 normalize group_size = 8 priority = position : tensor<8x4xf32>
// CHECK: moe.grouped_matmul %{{.*}} gather(%{{.*}}) weight(%{{.*}}) {{.*}} activation relu : tensor<8x16xbf16>, {{.*}} -> tensor<16x24xf32>
// CHECK: %[[Y:.*]] = moe.grouped_matmul {{.*}} scatter({{.*}}) {{.*}} -> tensor<8x16xf32>
// CHECK: %[[R:.*]] = arith.truncf %[[Y]] : tensor<8x16xf32> to tensor<8x16xbf16>
// CHECK: return %[[R]]
func.func @bf16_dropless(%x: tensor<8x16xbf16>, %r: tensor<4x16xf32>,
    %wi: tensor<4x16x24xbf16>, %wo: tensor<4x24x16xbf16>)
    -> (tensor<8x16xbf16>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>) {
  %y, %tpe, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo)
      top_k 2 activation relu normalize_gates priority position
      : tensor<8x16xbf16>, tensor<4x16xf32>, tensor<4x16x24xbf16>, tensor<4x24x16xbf16>
  return %y, %tpe, %d, %lb, %z : tensor<8x16xbf16>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>
}

// -----

// A packed expert_ffn on rows from elsewhere (what a sharded dropless rank
// receives): two grouped matmuls, no gather, no scatter.
// CHECK-LABEL: func @received_rows
// CHECK-SAME: (%[[B:.*]]: tensor<32x16xf32>, %[[WI:.*]]: tensor<2x16x24xf32>, %[[WO:.*]]: tensor<2x24x16xf32>, %[[C:.*]]: tensor<2xi64>)
// CHECK: %[[H:.*]] = moe.grouped_matmul %[[B]] weight(%[[WI]]) counts(%[[C]]) activation gelu : {{.*}} -> tensor<32x24xf32>
// CHECK: %[[O:.*]] = moe.grouped_matmul %[[H]] weight(%[[WO]]) counts(%[[C]]) : {{.*}} -> tensor<32x16xf32>
// CHECK: return %[[O]]
func.func @received_rows(%b: tensor<32x16xf32>, %wi: tensor<2x16x24xf32>,
    %wo: tensor<2x24x16xf32>, %c: tensor<2xi64>) -> tensor<32x16xf32> {
  %o = moe.expert_ffn %b w_in(%wi) w_out(%wo) counts(%c) activation gelu
      : tensor<32x16xf32>, tensor<2x16x24xf32>, tensor<2x24x16xf32>, tensor<2xi64>
  return %o : tensor<32x16xf32>
}

// -----

// Batch-prioritized ranking: the routing step ranks by the same
// probabilities it chooses from.
// CHECK-LABEL: func @bpr
// CHECK: %{{.*}}, %[[P:.*]], %{{.*}} = moe.route
// CHECK: moe.route_rows %[[P]] k = 1 group_size = 4 capacity = 2 priority = batch_prioritized : tensor<8x4xf32>
// CHECK-NOT: moe.top_k
func.func @bpr(%x: tensor<8x16xf32>, %r: tensor<4x16xf32>,
    %wi: tensor<4x16x24xf32>, %wo: tensor<4x24x16xf32>)
    -> (tensor<8x16xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>) {
  %y, %tpe, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo)
      top_k 1 activation relu expert_capacity 2 group_size 4
      priority batch_prioritized
      : tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x16x24xf32>, tensor<4x24x16xf32>
  return %y, %tpe, %d, %lb, %z : tensor<8x16xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>
}

// -----

// The slots are read elsewhere: the routing ops stay as they are.
// CHECK-LABEL: func @slots_used
// CHECK: moe.top_k
// CHECK: moe.assign_slots
// CHECK: moe.sort_by_expert
// CHECK-NOT: moe.route_rows
func.func @slots_used(%p: tensor<8x4xf32>, %x: tensor<8x16xf32>,
    %wi: tensor<4x16x24xf32>, %wo: tensor<4x24x16xf32>)
    -> (tensor<8x16xf32>, tensor<8x2xi32>) {
  %e, %g = moe.top_k %p k = 2 : tensor<8x4xf32>
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 priority = position : tensor<8x2xi32>
  %o, %t, %rg = moe.sort_by_expert %e, %s, %k, %g, %c
      : tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x2xi1>, tensor<8x2xf32>, tensor<4xi64>
      -> tensor<5xi64>, tensor<16xi32>, tensor<16xf32>
  %h = moe.grouped_matmul %x gather(%t) weight(%wi) offsets(%o) counts(%c) activation relu
      : tensor<8x16xf32>, tensor<16xi32>, tensor<4x16x24xf32>, tensor<5xi64>, tensor<4xi64> -> tensor<16x24xf32>
  %y = moe.grouped_matmul %h weight(%wo) offsets(%o) counts(%c) scatter(%t, %rg)
      : tensor<16x24xf32>, tensor<4x24x16xf32>, tensor<5xi64>, tensor<4xi64>, tensor<16xi32>, tensor<16xf32> -> tensor<8x16xf32>
  return %y, %s : tensor<8x16xf32>, tensor<8x2xi32>
}

// -----

// Spec section 8: the choice reads the biased, group-limited scores, the gates
// and the batch-prioritized ranking the unbiased ones; route_rows takes both,
// and the shared expert adds onto the fused combine.
// CHECK-LABEL: func @routing_family
// CHECK: %{{.*}}, %[[S:.*]], %{{.*}} = moe.route %{{.*}} score_function sigmoid
// CHECK: %[[CS:.*]] = moe.choice_scores %[[S]] bias(%{{.*}}) num_groups = 2 keep = 1 group_score top2_sum
// CHECK: moe.route_rows %[[CS]] k = 2 normalize group_size = 8 capacity = 4 priority = batch_prioritized gate_scores(%[[S]]) gate_scale = 2.500000e+00 : tensor<8x4xf32>, tensor<8x4xf32>
// CHECK: %[[Y:.*]] = moe.grouped_matmul {{.*}} scatter(
// CHECK: moe.shared_expert %{{.*}}, %{{.*}} w_in(%{{.*}}) w_out(%{{.*}}) activation relu
func.func @routing_family(%x: tensor<8x16xf32>, %r: tensor<4x16xf32>, %b: tensor<4xf32>,
    %wi: tensor<4x16x24xf32>, %wo: tensor<4x24x16xf32>, %si: tensor<16x8xf32>,
    %so: tensor<8x16xf32>)
    -> (tensor<8x16xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>) {
  %y, %tpe, %d, %lb, %z = moe.layer %x router(%r) score_bias(%b) w_in(%wi) w_out(%wo)
      shared_w_in(%si) shared_w_out(%so) top_k 2 activation relu normalize_gates
      expert_capacity 4 priority batch_prioritized score_function sigmoid num_groups 2
      topk_groups 1 group_score top2_sum gate_scale 2.5
      : tensor<8x16xf32>, tensor<4x16xf32>, tensor<4xf32>, tensor<4x16x24xf32>,
        tensor<4x24x16xf32>, tensor<16x8xf32>, tensor<8x16xf32>
  return %y, %tpe, %d, %lb, %z : tensor<8x16xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>
}
