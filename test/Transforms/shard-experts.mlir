// moe-shard-experts: the per-rank program of expert parallelism.
// RUN: moe-opt %s -split-input-file --moe-shard-experts=ranks=2 | FileCheck %s
// RUN: moe-opt %s -split-input-file --moe-shard-experts=ranks=1 | FileCheck %s --check-prefix=ONE

// Two ranks: 8 of 16 tokens and 2 of 4 experts each; the router stays whole.
// ONE-LABEL: func @top2
// ONE: moe.layer
// CHECK-LABEL: func @top2
// CHECK-SAME: (%[[X:.*]]: tensor<8x16xf32>, %[[R:.*]]: tensor<4x16xf32>, %[[WI:.*]]: tensor<2x16x32xf32>, %[[WO:.*]]: tensor<2x32x16xf32>)
// CHECK-SAME: -> (tensor<8x16xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>)
// CHECK-SAME: attributes {moe.expert_parallel_ranks = 2 : i64}
// CHECK: moe.route %[[X]], %[[R]]
// C = ceil(1.0 * 2 * 4 / 4) = 2 per group of 4; a rank holds 2 groups.
// CHECK: %[[S:.*]], %[[K:.*]], %[[C:.*]] = moe.assign_slots %{{.*}} num_experts = 4 group_size = 4 capacity = 2 priority = position
// CHECK: %[[B:.*]] = moe.dispatch {{.*}} -> tensor<4x4x16xf32>
// CHECK: %[[IN:.*]] = moe.all_to_all %[[B]] ranks = 2 split_dim = 0 concat_dim = 1 : tensor<4x4x16xf32>
// CHECK: %[[OUT:.*]] = moe.expert_ffn %[[IN]] w_in(%[[WI]]) w_out(%[[WO]]) activation relu : tensor<2x8x16xf32>
// CHECK: %[[BACK:.*]] = moe.all_to_all %[[OUT]] ranks = 2 split_dim = 1 concat_dim = 0 : tensor<2x8x16xf32>
// CHECK: %[[Y:.*]] = moe.combine %[[BACK]], {{.*}} : tensor<4x4x16xf32>
// Statistics: means averaged over ranks, counts summed.
// CHECK: %[[LB:.*]] = moe.load_balance_loss
// CHECK: %[[Z:.*]] = moe.router_z_loss
// CHECK: %[[D:.*]] = moe.count_dropped %[[K]]
// CHECK: %[[HALF:.*]] = arith.constant dense<5.000000e-01> : tensor<f32>
// CHECK: %[[LBH:.*]] = arith.mulf %[[LB]], %[[HALF]]
// CHECK: %[[LBS:.*]] = moe.all_reduce %[[LBH]] ranks = 2 : tensor<f32>
// CHECK: %[[ZH:.*]] = arith.mulf %[[Z]], %[[HALF]]
// CHECK: %[[ZS:.*]] = moe.all_reduce %[[ZH]] ranks = 2 : tensor<f32>
// CHECK: %[[DS:.*]] = moe.all_reduce %[[D]] ranks = 2 : tensor<i64>
// CHECK: %[[CS:.*]] = moe.all_reduce %[[C]] ranks = 2 : tensor<4xi64>
// CHECK: return %[[Y]], %[[CS]], %[[DS]], %[[LBS]], %[[ZS]]
func.func @top2(%x: tensor<16x16xf32>, %r: tensor<4x16xf32>, %wi: tensor<4x16x32xf32>, %wo: tensor<4x32x16xf32>)
    -> (tensor<16x16xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>) {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu normalize_gates capacity_factor 1.0 group_size 4 priority position
      : tensor<16x16xf32>, tensor<4x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>
  return %y, %t, %d, %lb, %z : tensor<16x16xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>
}

// -----

// Gated experts: w_gate is sliced like w_in.
// CHECK-LABEL: func @gated
// CHECK-SAME: (%{{.*}}: tensor<2x8xbf16>, %{{.*}}: tensor<4x8xbf16>, %{{.*}}: tensor<2x8x24xbf16>, %{{.*}}: tensor<2x8x24xbf16>, %{{.*}}: tensor<2x24x8xbf16>
// CHECK: moe.expert_ffn %{{.*}} w_in(%{{.*}}) w_gate(%{{.*}}) w_out(%{{.*}}) activation swiglu : tensor<2x2x8xbf16>
func.func @gated(%x: tensor<4x8xbf16>, %r: tensor<4x8xbf16>, %wi: tensor<4x8x24xbf16>, %wg: tensor<4x8x24xbf16>, %wo: tensor<4x24x8xbf16>) -> tensor<4x8xbf16> {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_gate(%wg) w_out(%wo) top_k 1 activation swiglu expert_capacity 1 group_size 2 priority batch_prioritized
      : tensor<4x8xbf16>, tensor<4x8xbf16>, tensor<4x8x24xbf16>, tensor<4x8x24xbf16>, tensor<4x24x8xbf16>
  return %y : tensor<4x8xbf16>
}

// -----

// Groups of 16 span both ranks (8 tokens each): the ranks gather the routing
// decisions, assign slots over the global order, keep their own rows, sum
// the disjoint expert rows they receive and gather the expert outputs back.
// CHECK-LABEL: func @spanning
// CHECK-SAME: (%[[X:.*]]: tensor<8x16xf32>, %{{.*}}: tensor<4x16xf32>, %{{.*}}: tensor<2x16x32xf32>, %{{.*}}: tensor<2x32x16xf32>)
// CHECK: %[[R:.*]] = moe.rank ranks = 2
// CHECK: %[[FIRST:.*]] = arith.muli %[[R]], %{{.*}} : index
// CHECK: %{{.*}}, %[[P:.*]], %[[LSE:.*]] = moe.route
// CHECK: %[[E:.*]], %[[G:.*]] = moe.top_k
// CHECK: %[[AE:.*]] = moe.all_gather %[[E]] ranks = 2 : tensor<8x2xi32>
// CHECK: %[[AP:.*]] = moe.all_gather %[[P]] ranks = 2 : tensor<8x4xf32>
// CHECK: %[[S:.*]], %[[K:.*]], %[[C:.*]] = moe.assign_slots %[[AE]] num_experts = 4 group_size = 16 capacity = 8 priority = batch_prioritized(%[[AP]]) : tensor<16x2xi32>, tensor<16x4xf32>
// CHECK: %[[MYS:.*]] = tensor.extract_slice %[[S]][%[[FIRST]], 0] [8, 2] [1, 1]
// CHECK: %[[MYK:.*]] = tensor.extract_slice %[[K]][%[[FIRST]], 0] [8, 2] [1, 1]
// CHECK: %[[D:.*]] = moe.count_dropped %[[K]]
// CHECK: %[[LB:.*]] = moe.load_balance_loss %[[AP]], %[[AE]] group_size = 16
// CHECK: %[[B:.*]] = moe.dispatch %[[X]], %[[E]], %[[MYS]], %[[MYK]] {{.*}} -> tensor<4x8x16xf32>
// CHECK: %[[IN:.*]] = moe.all_to_all %[[B]] ranks = 2 split_dim = 0 concat_dim = 1
// CHECK: tensor.expand_shape %[[IN]] {{\[}}[0], [1, 2], [3]] output_shape [2, 2, 8, 16]
// CHECK: %[[SUM:.*]] = linalg.reduce
// CHECK: %[[OUT:.*]] = moe.expert_ffn %[[SUM]] {{.*}} : tensor<2x8x16xf32>
// CHECK: %[[ALL:.*]] = moe.all_gather %[[OUT]] ranks = 2 : tensor<2x8x16xf32>
// CHECK: %[[Y:.*]] = moe.combine %[[ALL]], %[[E]], %[[MYS]], %[[MYK]], %[[G]]
// CHECK: moe.router_z_loss %[[LSE]]
// CHECK: %[[Z:.*]] = moe.all_reduce
// CHECK: return %[[Y]], %[[C]], %[[D]], %[[LB]], %[[Z]]
func.func @spanning(%x: tensor<16x16xf32>, %r: tensor<4x16xf32>, %wi: tensor<4x16x32xf32>, %wo: tensor<4x32x16xf32>)
    -> (tensor<16x16xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>) {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu normalize_gates capacity_factor 1.0 priority batch_prioritized
      : tensor<16x16xf32>, tensor<4x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>
  return %y, %t, %d, %lb, %z : tensor<16x16xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>
}

// -----

// Dropless: each rank packs its own assignments expert-major, the
// variable-size exchange sends every owner exactly its experts' rows (up to
// min(k, E/N) rows per token of each of the N ranks) and returns the outputs;
// the owner's experts run on the row counts it received, summed over ranks.
// The group spans both ranks, so the balance loss reads gathered decisions.
// CHECK-LABEL: func @dropless
// CHECK-SAME: (%[[X:.*]]: tensor<8x4xf32>, %[[R:.*]]: tensor<4x4xf32>, %[[WI:.*]]: tensor<2x4x8xf32>, %[[WO:.*]]: tensor<2x8x4xf32>)
// CHECK: %{{.*}}, %[[P:[^,]*]], %{{.*}} = moe.route %[[X]]
// CHECK: %[[E:.*]], %[[G:.*]] = moe.top_k %[[P]] k = 2 normalize
// CHECK: %[[S:.*]], %[[K:.*]], %[[C:.*]] = moe.assign_slots %[[E]] num_experts = 4 group_size = 8 priority = position : tensor<8x2xi32>
// CHECK: %[[ROWS:.*]] = moe.dispatch %[[X]], %[[E]], %[[S]], %[[K]] {{.*}} -> tensor<16x4xf32>
// CHECK: %[[GOT:.*]], %[[GOTC:.*]] = moe.exchange_rows %[[ROWS]], %[[C]] ranks = 2 : tensor<16x4xf32>, tensor<4xi64> -> tensor<32x4xf32>, tensor<2x2xi64>
// CHECK: %[[LOCAL:.*]] = linalg.reduce ins(%[[GOTC]] : tensor<2x2xi64>) {{.*}} dimensions = [0]
// CHECK: %[[OUT:.*]] = moe.expert_ffn %[[GOT]] w_in(%[[WI]]) w_out(%[[WO]]) counts(%[[LOCAL]])
// CHECK: %[[BACK:.*]] = moe.return_rows %[[OUT]], %[[GOTC]], %[[C]] ranks = 2 : tensor<32x4xf32>, tensor<2x2xi64>, tensor<4xi64> -> tensor<16x4xf32>
// CHECK: %[[Y:.*]] = moe.combine %[[BACK]], %[[E]], %[[S]], %[[K]], %[[G]]
// CHECK-DAG: moe.all_gather %[[P]] ranks = 2 : tensor<8x4xf32>
// CHECK-DAG: moe.all_gather %[[E]] ranks = 2 : tensor<8x2xi32>
// CHECK-DAG: moe.all_reduce %[[C]] ranks = 2 : tensor<4xi64>
// CHECK-NOT: moe.all_to_all
// CHECK: return %[[Y]]
func.func @dropless(%x: tensor<16x4xf32>, %r: tensor<4x4xf32>, %wi: tensor<4x4x8xf32>, %wo: tensor<4x8x4xf32>) -> tensor<16x4xf32> {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu normalize_gates group_size 16 priority position
      : tensor<16x4xf32>, tensor<4x4xf32>, tensor<4x4x8xf32>, tensor<4x8x4xf32>
  return %y : tensor<16x4xf32>
}

// -----

// Dropless with groups inside a rank: the balance loss is the mean of the
// ranks' own, nothing is gathered.
// CHECK-LABEL: func @dropless_local_groups
// CHECK: moe.exchange_rows
// CHECK-NOT: moe.all_gather
// CHECK: moe.load_balance_loss %{{.*}}, %{{.*}} group_size = 4
// CHECK: moe.all_reduce
// CHECK-NOT: moe.all_gather
// CHECK: return
func.func @dropless_local_groups(%x: tensor<16x4xf32>, %r: tensor<4x4xf32>, %wi: tensor<4x4x8xf32>, %wo: tensor<4x8x4xf32>) -> (tensor<16x4xf32>, tensor<f32>) {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu normalize_gates group_size 4 priority position
      : tensor<16x4xf32>, tensor<4x4xf32>, tensor<4x4x8xf32>, tensor<4x8x4xf32>
  return %y, %lb : tensor<16x4xf32>, tensor<f32>
}

// -----

// Expert choice with a group spanning both ranks (spec §6, §8): the ranks
// gather the group's scores, every expert takes its C tokens over the global
// order, each rank keeps its own rows of the decision, and the shared expert
// runs on every rank for its own tokens with the unsharded shared weights.
// CHECK-LABEL: func @expert_choice_spanning
// CHECK-SAME: (%[[X:.*]]: tensor<8x16xf32>, %{{.*}}: tensor<4x16xf32>, %{{.*}}: tensor<2x16x32xf32>, %{{.*}}: tensor<2x32x16xf32>, %[[SI:.*]]: tensor<16x8xf32>, %[[SO:.*]]: tensor<8x16xf32>)
// CHECK: %[[R:.*]] = moe.rank ranks = 2
// CHECK: %{{.*}}, %[[P:.*]], %[[LSE:.*]] = moe.route
// CHECK: %[[AP:.*]] = moe.all_gather %[[P]] ranks = 2 : tensor<8x4xf32>
// CHECK: %[[E:.*]], %[[S:.*]], %[[K:.*]], %[[G:.*]], %[[C:.*]] = moe.expert_choice %[[AP]] group_size = 16 capacity = 4 gate_scale = 2.000000e+00 : tensor<16x4xf32>
// CHECK: %[[MYE:.*]] = tensor.extract_slice %[[E]]
// CHECK: %[[MYS:.*]] = tensor.extract_slice %[[S]]
// CHECK: %[[MYK:.*]] = tensor.extract_slice %[[K]]
// CHECK: %[[MYG:.*]] = tensor.extract_slice %[[G]]
// CHECK: %[[D:.*]] = moe.count_dropped %[[K]] tokens
// CHECK: moe.dispatch %[[X]], %[[MYE]], %[[MYS]], %[[MYK]] {{.*}} -> tensor<4x4x16xf32>
// CHECK: %[[Y:.*]] = moe.combine %{{.*}}, %[[MYE]], %[[MYS]], %[[MYK]], %[[MYG]]
// CHECK: %[[Y2:.*]] = moe.shared_expert %[[X]], %[[Y]] w_in(%[[SI]]) w_out(%[[SO]])
// CHECK: return %[[Y2]], %[[C]], %[[D]]
func.func @expert_choice_spanning(%x: tensor<16x16xf32>, %r: tensor<4x16xf32>, %wi: tensor<4x16x32xf32>,
    %wo: tensor<4x32x16xf32>, %si: tensor<16x8xf32>, %so: tensor<8x16xf32>)
    -> (tensor<16x16xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>) {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) shared_w_in(%si) shared_w_out(%so)
      top_k 1 activation relu capacity_factor 1.0 priority position routing experts_choose gate_scale 2.0
      : tensor<16x16xf32>, tensor<4x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>, tensor<16x8xf32>, tensor<8x16xf32>
  return %y, %t, %d, %lb, %z : tensor<16x16xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>
}
