// moe-shard-experts with data-parallel replicas: 2 expert-parallel ranks x 2
// replicas. The rank takes 1/4 of the tokens and 1/2 of the experts; exchanges
// stay within its group of 2 ranks, the statistics go over all 4.
// RUN: moe-opt %s -split-input-file --moe-shard-experts="ranks=2 replicas=2" -verify-diagnostics | FileCheck %s
// RUN: not moe-opt %s --moe-shard-experts="ranks=2 replicas=0" 2>&1 | FileCheck %s --check-prefix=ZERO
// RUN: not moe-opt %s --moe-shard-experts="ranks=0" 2>&1 | FileCheck %s --check-prefix=RANKS0

// CHECK-LABEL: func @local
// CHECK-SAME: (%{{.*}}: tensor<4x16xf32>, %{{.*}}: tensor<4x16xf32>, %{{.*}}: tensor<2x16x32xf32>, %{{.*}}: tensor<2x32x16xf32>)
// CHECK-SAME: attributes {moe.data_parallel_replicas = 2 : i64, moe.expert_parallel_ranks = 2 : i64}
// CHECK: moe.all_to_all %{{.*}} ranks = 2 split_dim = 0 concat_dim = 1
// CHECK: moe.all_to_all %{{.*}} ranks = 2 split_dim = 1 concat_dim = 0
// CHECK: arith.constant dense<2.500000e-01> : tensor<f32>
// CHECK: moe.all_reduce %{{.*}} ranks = 4 : tensor<f32>
// CHECK: moe.all_reduce %{{.*}} ranks = 4 : tensor<f32>
// CHECK: moe.all_reduce %{{.*}} ranks = 4 : tensor<i64>
// CHECK: moe.all_reduce %{{.*}} ranks = 4 : tensor<4xi64>
// ZERO: error: moe-shard-experts: 'replicas' must be at least 1, got 0{{$}}
// RANKS0: error: moe-shard-experts: 'ranks' must be at least 1, got 0{{$}}
func.func @local(%x: tensor<16x16xf32>, %r: tensor<4x16xf32>, %wi: tensor<4x16x32xf32>, %wo: tensor<4x32x16xf32>)
    -> (tensor<16x16xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>) {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu normalize_gates capacity_factor 1.0 group_size 4 priority position
      : tensor<16x16xf32>, tensor<4x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>
  return %y, %t, %d, %lb, %z : tensor<16x16xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>
}

// -----

// A group of 8 spans the 2 ranks of a replica (16 / 2 = 8 tokens each): the
// group's ranks gather their decisions; the group-level counts are summed over
// all 4 ranks and divided by the 2 that hold each.
// CHECK-LABEL: func @spanning
// CHECK: moe.all_gather %{{.*}} ranks = 2
// CHECK: %[[SUM:.*]] = moe.all_reduce %{{.*}} ranks = 4 : tensor<4xi64>
// CHECK: %[[TWO:.*]] = arith.constant dense<2> : tensor<4xi64>
// CHECK: arith.divsi %[[SUM]], %[[TWO]] : tensor<4xi64>
func.func @spanning(%x: tensor<16x16xf32>, %r: tensor<4x16xf32>, %wi: tensor<4x16x32xf32>, %wo: tensor<4x32x16xf32>)
    -> (tensor<16x16xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>) {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu normalize_gates capacity_factor 1.0 group_size 8 priority position
      : tensor<16x16xf32>, tensor<4x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>
  return %y, %t, %d, %lb, %z : tensor<16x16xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>
}

// -----

func.func @across_replicas(%x: tensor<16x16xf32>, %r: tensor<4x16xf32>, %wi: tensor<4x16x32xf32>, %wo: tensor<4x32x16xf32>)
    -> (tensor<16x16xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>) {
  // expected-error @+1 {{'moe.layer' op cannot be split into 2 data-parallel replicas: its routing groups of 16 tokens would span replicas of 8 tokens}}
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu normalize_gates capacity_factor 1.0 priority position
      : tensor<16x16xf32>, tensor<4x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>
  return %y, %t, %d, %lb, %z : tensor<16x16xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>
}
