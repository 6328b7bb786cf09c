// Round trip of every moe op in its pretty form, directly and through the
// generic form.
// RUN: moe-opt %s | moe-opt | FileCheck %s
// RUN: moe-opt %s --mlir-print-op-generic | moe-opt | FileCheck %s

// CHECK-LABEL: func @layer_capacity
// CHECK: moe.layer %{{.*}} router(%{{.*}}) w_in(%{{.*}}) w_out(%{{.*}}) top_k 2 activation relu normalize_gates capacity_factor 1.250000e+00 min_capacity 4 group_size 8 priority batch_prioritized : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
func.func @layer_capacity(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>,
    %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>)
    -> (tensor<16x32xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>) {
  %y, %tpe, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo)
      top_k 2 activation relu normalize_gates capacity_factor 1.25
      min_capacity 4 group_size 8 priority batch_prioritized
      : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return %y, %tpe, %d, %lb, %z : tensor<16x32xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>
}

// CHECK-LABEL: func @layer_gated_fixed
// CHECK: moe.layer %{{.*}} router(%{{.*}}) w_in(%{{.*}}) w_gate(%{{.*}}) w_out(%{{.*}}) top_k 1 activation swiglu expert_capacity 3 priority position : tensor<8x16xbf16>, tensor<4x16xbf16>, tensor<4x16x24xbf16>, tensor<4x16x24xbf16>, tensor<4x24x16xbf16>
// CHECK-SAME: {{$}}
func.func @layer_gated_fixed(%x: tensor<8x16xbf16>, %r: tensor<4x16xbf16>,
    %wi: tensor<4x16x24xbf16>, %wg: tensor<4x16x24xbf16>, %wo: tensor<4x24x16xbf16>)
    -> tensor<8x16xbf16> {
  %y, %tpe, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_gate(%wg) w_out(%wo)
      top_k 1 activation swiglu expert_capacity 3 priority position
      : tensor<8x16xbf16>, tensor<4x16xbf16>, tensor<4x16x24xbf16>, tensor<4x16x24xbf16>, tensor<4x24x16xbf16>
  return %y : tensor<8x16xbf16>
}

// CHECK-LABEL: func @layer_dropless_mixed_types
// CHECK: moe.layer %{{.*}} router(%{{.*}}) w_in(%{{.*}}) w_gate(%{{.*}}) w_out(%{{.*}}) top_k 2 activation geglu priority position : tensor<8x16xf16>, tensor<4x16xf32>, tensor<4x16x24xbf16>, tensor<4x16x24xbf16>, tensor<4x24x16xbf16>
func.func @layer_dropless_mixed_types(%x: tensor<8x16xf16>, %r: tensor<4x16xf32>,
    %wi: tensor<4x16x24xbf16>, %wg: tensor<4x16x24xbf16>, %wo: tensor<4x24x16xbf16>)
    -> tensor<4xi64> {
  %y, %tpe, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_gate(%wg) w_out(%wo)
      top_k 2 activation geglu priority position
      : tensor<8x16xf16>, tensor<4x16xf32>, tensor<4x16x24xbf16>, tensor<4x16x24xbf16>, tensor<4x24x16xbf16>
  return %tpe : tensor<4xi64>
}

// CHECK-LABEL: func @decomposed
// CHECK: %[[L:.*]], %[[P:.*]], %[[LSE:.*]] = moe.route %{{.*}}, %{{.*}} : tensor<16x32xbf16>, tensor<4x32xf32>
// CHECK: %[[E:.*]], %[[G:.*]] = moe.top_k %[[P]] k = 2 normalize : tensor<16x4xf32>
// CHECK: %[[S:.*]], %[[K:.*]], %[[C:.*]] = moe.assign_slots %[[E]] num_experts = 4 group_size = 8 capacity = 4 priority = batch_prioritized(%[[P]]) : tensor<16x2xi32>, tensor<16x4xf32>
// CHECK: %[[B:.*]] = moe.dispatch %{{.*}}, %[[E]], %[[S]], %[[K]] : tensor<16x32xbf16>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1> -> tensor<4x8x32xbf16>
// CHECK: %[[O:.*]] = moe.expert_ffn %[[B]] w_in(%{{.*}}) w_out(%{{.*}}) activation gelu_tanh : tensor<4x8x32xbf16>, tensor<4x32x64xbf16>, tensor<4x64x32xbf16>
// CHECK: %[[A:.*]] = moe.all_to_all %[[O]] ranks = 2 split_dim = 0 concat_dim = 1 : tensor<4x8x32xbf16>
// CHECK: %[[A2:.*]] = moe.all_to_all %[[A]] ranks = 2 split_dim = 1 concat_dim = 0 : tensor<2x16x32xbf16>
// CHECK: moe.combine %[[A2]], %[[E]], %[[S]], %[[K]], %[[G]] : tensor<4x8x32xbf16>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1>, tensor<16x2xf32>
// CHECK: moe.load_balance_loss %[[P]], %[[E]] group_size = 8 : tensor<16x4xf32>, tensor<16x2xi32>
// CHECK: moe.router_z_loss %[[LSE]] : tensor<16xf32>
// CHECK: moe.count_dropped %[[K]] : tensor<16x2xi1>
func.func @decomposed(%x: tensor<16x32xbf16>, %r: tensor<4x32xf32>,
    %wi: tensor<4x32x64xbf16>, %wo: tensor<4x64x32xbf16>)
    -> (tensor<16x32xbf16>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>) {
  %logits, %probs, %lse = moe.route %x, %r : tensor<16x32xbf16>, tensor<4x32xf32>
  %experts, %gates = moe.top_k %probs k = 2 normalize : tensor<16x4xf32>
  %slots, %keep, %counts = moe.assign_slots %experts num_experts = 4
      group_size = 8 capacity = 4 priority = batch_prioritized(%probs)
      : tensor<16x2xi32>, tensor<16x4xf32>
  %buf = moe.dispatch %x, %experts, %slots, %keep
      : tensor<16x32xbf16>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1> -> tensor<4x8x32xbf16>
  %out = moe.expert_ffn %buf w_in(%wi) w_out(%wo) activation gelu_tanh
      : tensor<4x8x32xbf16>, tensor<4x32x64xbf16>, tensor<4x64x32xbf16>
  %sent = moe.all_to_all %out ranks = 2 split_dim = 0 concat_dim = 1 : tensor<4x8x32xbf16>
  %back = moe.all_to_all %sent ranks = 2 split_dim = 1 concat_dim = 0 : tensor<2x16x32xbf16>
  %y = moe.combine %back, %experts, %slots, %keep, %gates
      : tensor<4x8x32xbf16>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1>, tensor<16x2xf32>
  %lb = moe.load_balance_loss %probs, %experts group_size = 8 : tensor<16x4xf32>, tensor<16x2xi32>
  %z = moe.router_z_loss %lse : tensor<16xf32>
  %d = moe.count_dropped %keep : tensor<16x2xi1>
  return %y, %counts, %d, %lb, %z : tensor<16x32xbf16>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>
}

// CHECK-LABEL: func @packed
// CHECK: moe.assign_slots %{{.*}} num_experts = 4 group_size = 16 priority = position : tensor<16x2xi32>
// CHECK: moe.assign_slots %{{.*}} num_experts = 4 group_size = 8 capacity = 3 priority = position packed : tensor<16x2xi32>
// CHECK: moe.dispatch {{.*}} -> tensor<32x32xf32>
// CHECK: moe.expert_ffn %{{.*}} w_in(%{{.*}}) w_gate(%{{.*}}) w_out(%{{.*}}) counts(%{{.*}}) activation swiglu : tensor<32x32xf32>, tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>, tensor<4xi64>
// CHECK: moe.combine {{.*}} : tensor<32x32xf32>,
func.func @packed(%x: tensor<16x32xf32>, %experts: tensor<16x2xi32>, %gates: tensor<16x2xf32>,
    %wi: tensor<4x32x64xf32>, %wg: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>)
    -> tensor<16x32xf32> {
  %slots, %keep, %counts = moe.assign_slots %experts num_experts = 4
      group_size = 16 priority = position : tensor<16x2xi32>
  %s2, %k2, %c2 = moe.assign_slots %experts num_experts = 4
      group_size = 8 capacity = 3 priority = position packed : tensor<16x2xi32>
  %buf = moe.dispatch %x, %experts, %slots, %keep
      : tensor<16x32xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1> -> tensor<32x32xf32>
  %out = moe.expert_ffn %buf w_in(%wi) w_gate(%wg) w_out(%wo) counts(%counts) activation swiglu
      : tensor<32x32xf32>, tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>, tensor<4xi64>
  %y = moe.combine %out, %experts, %slots, %keep, %gates
      : tensor<32x32xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1>, tensor<16x2xf32>
  return %y : tensor<16x32xf32>
}

// CHECK-LABEL: func @all_reduce
// CHECK: moe.all_reduce %{{.*}} ranks = 4 : tensor<8xi64>
// CHECK: moe.all_reduce %{{.*}} ranks = 4 : tensor<f32>
func.func @all_reduce(%c: tensor<8xi64>, %l: tensor<f32>) -> (tensor<8xi64>, tensor<f32>) {
  %a = moe.all_reduce %c ranks = 4 : tensor<8xi64>
  %b = moe.all_reduce %l ranks = 4 : tensor<f32>
  return %a, %b : tensor<8xi64>, tensor<f32>
}

// CHECK-LABEL: func @gather_rank
// CHECK: moe.all_gather %{{.*}} ranks = 4 : tensor<8x2xi32>
// CHECK: moe.rank ranks = 4
func.func @gather_rank(%e: tensor<8x2xi32>) -> (tensor<32x2xi32>, index) {
  %a = moe.all_gather %e ranks = 4 : tensor<8x2xi32>
  %r = moe.rank ranks = 4
  return %a, %r : tensor<32x2xi32>, index
}

// CHECK-LABEL: func @row_exchange
// CHECK: %[[R:.*]], %[[RC:.*]] = moe.exchange_rows %{{.*}}, %[[C:.*]] ranks = 2 : tensor<32x16xbf16>, tensor<4xi64> -> tensor<64x16xbf16>, tensor<2x2xi64>
// CHECK: moe.return_rows %[[R]], %[[RC]], %[[C]] ranks = 2 : tensor<64x16xbf16>, tensor<2x2xi64>, tensor<4xi64> -> tensor<32x16xbf16>
func.func @row_exchange(%b: tensor<32x16xbf16>, %c: tensor<4xi64>) -> tensor<32x16xbf16> {
  %rows, %got = moe.exchange_rows %b, %c ranks = 2 : tensor<32x16xbf16>, tensor<4xi64> -> tensor<64x16xbf16>, tensor<2x2xi64>
  %back = moe.return_rows %rows, %got, %c ranks = 2 : tensor<64x16xbf16>, tensor<2x2xi64>, tensor<4xi64> -> tensor<32x16xbf16>
  return %back : tensor<32x16xbf16>
}
