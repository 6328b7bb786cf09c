// The moe-decompose pass: moe.layer into route, top_k, assign_slots,
// dispatch, expert_ffn, combine and the statistics.
// RUN: moe-opt %s -split-input-file --moe-decompose | FileCheck %s

// Capacity-bounded, two groups of 8: C = max(1, ceil(1.25 * 2 * 8 / 4)) = 5,
// so the padded buffer is [E, G·C, D] = [4, 10, 32].
// CHECK-LABEL: func @capacity_groups
// CHECK-SAME: (%[[X:.*]]: tensor<16x32xf32>, %[[R:.*]]: tensor<4x32xf32>, %[[WI:.*]]: tensor<4x32x64xf32>, %[[WO:.*]]: tensor<4x64x32xf32>)
// CHECK-NOT: moe.layer
// CHECK: %{{.*}}, %[[P:.*]], %[[LSE:.*]] = moe.route %[[X]], %[[R]] : tensor<16x32xf32>, tensor<4x32xf32>
// CHECK: %[[E:.*]], %[[G:.*]] = moe.top_k %[[P]] k = 2 normalize : tensor<16x4xf32>
// CHECK: %[[S:.*]], %[[K:.*]], %[[C:.*]] = moe.assign_slots %[[E]] num_experts = 4 group_size = 8 capacity = 5 priority = position : tensor<16x2xi32>
// CHECK: %[[B:.*]] = moe.dispatch %[[X]], %[[E]], %[[S]], %[[K]] : {{.*}} -> tensor<4x10x32xf32>
// CHECK: %[[O:.*]] = moe.expert_ffn %[[B]] w_in(%[[WI]]) w_out(%[[WO]]) activation relu : tensor<4x10x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
// CHECK: %[[Y:.*]] = moe.combine %[[O]], %[[E]], %[[S]], %[[K]], %[[G]]
// CHECK: %[[LB:.*]] = moe.load_balance_loss %[[P]], %[[E]] group_size = 8
// CHECK: %[[Z:.*]] = moe.router_z_loss %[[LSE]]
// CHECK: %[[D:.*]] = moe.count_dropped %[[K]]
// CHECK: return %[[Y]], %[[C]], %[[D]], %[[LB]], %[[Z]]
func.func @capacity_groups(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>,
    %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>)
    -> (tensor<16x32xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>) {
  %y, %tpe, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo)
      top_k 2 activation relu normalize_gates capacity_factor 1.25
      group_size 8 priority position
      : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return %y, %tpe, %d, %lb, %z : tensor<16x32xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>
}

// -----

// min_capacity wins over a small factor: ceil(0.1 * 1 * 16 / 4) = 1 < 3.
// CHECK-LABEL: func @min_capacity
// CHECK: moe.top_k %{{.*}} k = 1 : tensor<16x4xf32>
// CHECK: moe.assign_slots %{{.*}} num_experts = 4 group_size = 16 capacity = 3 priority = position
// CHECK: -> tensor<4x3x32xf32>
func.func @min_capacity(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>,
    %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) -> tensor<16x32xf32> {
  %y, %tpe, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo)
      top_k 1 activation gelu capacity_factor 0.1 min_capacity 3 priority position
      : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return %y : tensor<16x32xf32>
}

// -----

// Dropless and gated: a packed [T·k, D] buffer and per-expert counts.
// CHECK-LABEL: func @dropless_gated
// CHECK-SAME: %[[WI:[^:]*]]: tensor<8x16x24xbf16>, %[[WG:[^:]*]]: tensor<8x16x24xbf16>, %[[WO:[^:]*]]: tensor<8x24x16xbf16>
// CHECK: moe.route %{{.*}}, %{{.*}} : tensor<6x16xbf16>, tensor<8x16xbf16>
// CHECK: %[[E:.*]], %{{.*}} = moe.top_k %{{.*}} k = 2 normalize : tensor<6x8xf32>
// CHECK: %[[S:.*]], %[[K:.*]], %[[C:.*]] = moe.assign_slots %[[E]] num_experts = 8 group_size = 6 priority = position : tensor<6x2xi32>
// CHECK: %[[B:.*]] = moe.dispatch {{.*}} -> tensor<12x16xbf16>
// CHECK: moe.expert_ffn %[[B]] w_in(%[[WI]]) w_gate(%[[WG]]) w_out(%[[WO]]) counts(%[[C]]) activation swiglu : tensor<12x16xbf16>
func.func @dropless_gated(%x: tensor<6x16xbf16>, %r: tensor<8x16xbf16>,
    %wi: tensor<8x16x24xbf16>, %wg: tensor<8x16x24xbf16>, %wo: tensor<8x24x16xbf16>)
    -> tensor<6x16xbf16> {
  %y, %tpe, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_gate(%wg) w_out(%wo)
      top_k 2 activation swiglu normalize_gates priority position
      : tensor<6x16xbf16>, tensor<8x16xbf16>, tensor<8x16x24xbf16>, tensor<8x16x24xbf16>, tensor<8x24x16xbf16>
  return %y : tensor<6x16xbf16>
}

// -----

// Batch-prioritized slot assignment reads the router probabilities, and a
// fixed capacity above the group size is clamped to S = 4 rows per group.
// CHECK-LABEL: func @bpr_clamped
// CHECK: %{{.*}}, %[[P:.*]], %{{.*}} = moe.route
// CHECK: moe.assign_slots %{{.*}} num_experts = 2 group_size = 4 capacity = 4 priority = batch_prioritized(%[[P]]) : tensor<8x1xi32>, tensor<8x2xf32>
// CHECK: -> tensor<2x8x4xf32>
func.func @bpr_clamped(%x: tensor<8x4xf32>, %r: tensor<2x4xf32>,
    %wi: tensor<2x4x8xf32>, %wo: tensor<2x8x4xf32>) -> tensor<8x4xf32> {
  %y, %tpe, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo)
      top_k 1 activation silu expert_capacity 100 group_size 4 priority batch_prioritized
      : tensor<8x4xf32>, tensor<2x4xf32>, tensor<2x4x8xf32>, tensor<2x8x4xf32>
  return %y : tensor<8x4xf32>
}

// -----

// Ops other than moe.layer are left alone.
// CHECK-LABEL: func @no_layer
// CHECK-NEXT: moe.router_z_loss
// CHECK-NEXT: return
func.func @no_layer(%lse: tensor<8xf32>) -> tensor<f32> {
  %z = moe.router_z_loss %lse : tensor<8xf32>
  return %z : tensor<f32>
}

// -----

// With packed-capacity, a capacity-bounded layer uses the packed [T·k, D]
// buffer: only kept assignments occupy rows, counted per expert.
// RUN: moe-opt %s -split-input-file --moe-decompose=packed-capacity=1 | FileCheck %s --check-prefix=PACKED
// PACKED-LABEL: func @capacity_groups
// PACKED: %{{.*}}, %{{.*}}, %[[C:.*]] = moe.assign_slots %{{.*}} num_experts = 4 group_size = 8 capacity = 5 priority = position packed : tensor<16x2xi32>
// PACKED: moe.dispatch {{.*}} -> tensor<32x32xf32>
// PACKED: moe.expert_ffn %{{.*}} w_in(%{{.*}}) w_out(%{{.*}}) counts(%[[C]]) activation relu : tensor<32x32xf32>
// Dropless layers are packed either way, without the attribute.
// PACKED-LABEL: func @dropless_gated
// PACKED: moe.assign_slots %{{.*}} num_experts = 8 group_size = 6 priority = position : tensor<6x2xi32>
