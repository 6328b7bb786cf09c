// Canonical forms and folders of the moe ops: each pattern has a case where
// it applies and one where it must not.
// RUN: moe-opt %s -split-input-file --canonicalize | FileCheck %s

// A fixed capacity of S can never overflow: the layer becomes dropless.
// CHECK-LABEL: func @fixed_capacity_never_binds
// CHECK: moe.layer {{.*}} top_k 1 activation relu group_size 8 priority position :
func.func @fixed_capacity_never_binds(%x: tensor<16x4xf32>, %r: tensor<4x4xf32>,
    %wi: tensor<4x4x8xf32>, %wo: tensor<4x8x4xf32>) -> tensor<16x4xf32> {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo)
      top_k 1 activation relu expert_capacity 8 group_size 8 priority position
      : tensor<16x4xf32>, tensor<4x4xf32>, tensor<4x4x8xf32>, tensor<4x8x4xf32>
  return %y : tensor<16x4xf32>
}

// -----

// C = max(2, ceil(4.0 * 1 * 8 / 4)) = 8 = S: dropless, min_capacity goes too.
// CHECK-LABEL: func @factor_capacity_never_binds
// CHECK: moe.layer {{.*}} top_k 1 activation relu group_size 8 priority position :
func.func @factor_capacity_never_binds(%x: tensor<16x4xf32>, %r: tensor<4x4xf32>,
    %wi: tensor<4x4x8xf32>, %wo: tensor<4x8x4xf32>) -> tensor<16x4xf32> {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo)
      top_k 1 activation relu capacity_factor 4.0 min_capacity 2 group_size 8 priority position
      : tensor<16x4xf32>, tensor<4x4xf32>, tensor<4x4x8xf32>, tensor<4x8x4xf32>
  return %y : tensor<16x4xf32>
}

// -----

// C = 7 < S = 8 can drop: everything stays.
// CHECK-LABEL: func @capacity_binds
// CHECK: moe.layer {{.*}} top_k 1 activation relu expert_capacity 7 group_size 8 priority position :
func.func @capacity_binds(%x: tensor<16x4xf32>, %r: tensor<4x4xf32>,
    %wi: tensor<4x4x8xf32>, %wo: tensor<4x8x4xf32>) -> tensor<16x4xf32> {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo)
      top_k 1 activation relu expert_capacity 7 group_size 8 priority position
      : tensor<16x4xf32>, tensor<4x4xf32>, tensor<4x4x8xf32>, tensor<4x8x4xf32>
  return %y : tensor<16x4xf32>
}

// -----

// A group as large as the call is the default; gate normalisation over all
// experts divides by one. The capacity (ceil(1.0 * 4 * 16 / 4) = 16 = S)
// never binds either.
// CHECK-LABEL: func @whole_call_group_all_experts
// CHECK: moe.layer {{.*}} top_k 4 activation gelu priority position :
func.func @whole_call_group_all_experts(%x: tensor<16x4xf32>, %r: tensor<4x4xf32>,
    %wi: tensor<4x4x8xf32>, %wo: tensor<4x8x4xf32>) -> tensor<16x4xf32> {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo)
      top_k 4 activation gelu normalize_gates capacity_factor 1.0 group_size 16 priority position
      : tensor<16x4xf32>, tensor<4x4xf32>, tensor<4x4x8xf32>, tensor<4x8x4xf32>
  return %y : tensor<16x4xf32>
}

// -----

// k < E keeps normalisation; a capacity below S stays.
// CHECK-LABEL: func @keeps_normalize
// CHECK: moe.layer {{.*}} top_k 3 activation gelu normalize_gates capacity_factor 1.000000e+00 priority position :
func.func @keeps_normalize(%x: tensor<16x4xf32>, %r: tensor<4x4xf32>,
    %wi: tensor<4x4x8xf32>, %wo: tensor<4x8x4xf32>) -> tensor<16x4xf32> {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo)
      top_k 3 activation gelu normalize_gates capacity_factor 1.0 priority position
      : tensor<16x4xf32>, tensor<4x4xf32>, tensor<4x4x8xf32>, tensor<4x8x4xf32>
  return %y : tensor<16x4xf32>
}

// -----

// Normalizing softmax probabilities over all experts divides by one; not
// sigmoid scores, not gates read from other scores, not probabilities of
// unknown origin.
// CHECK-LABEL: func @top_k_all_experts
// CHECK: moe.top_k %{{.*}} k = 4 : tensor<8x4xf32>
// CHECK: moe.top_k %{{.*}} k = 3 normalize : tensor<8x4xf32>
// CHECK: moe.top_k %{{.*}} k = 4 normalize : tensor<8x4xf32>
// CHECK: moe.top_k %{{.*}} k = 4 normalize gate_scores(%{{.*}}) : tensor<8x4xf32>, tensor<8x4xf32>
// CHECK: moe.top_k %{{.*}} k = 4 normalize : tensor<8x4xf32>
func.func @top_k_all_experts(%x: tensor<8x16xf32>, %r: tensor<4x16xf32>, %p: tensor<8x4xf32>)
    -> (tensor<8x4xf32>, tensor<8x3xf32>, tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x4xf32>) {
  %l, %probs, %lse = moe.route %x, %r : tensor<8x16xf32>, tensor<4x16xf32>
  %l2, %sig, %lse2 = moe.route %x, %r score_function sigmoid : tensor<8x16xf32>, tensor<4x16xf32>
  %e, %g = moe.top_k %probs k = 4 normalize : tensor<8x4xf32>
  %e3, %g3 = moe.top_k %probs k = 3 normalize : tensor<8x4xf32>
  %e4, %g4 = moe.top_k %sig k = 4 normalize : tensor<8x4xf32>
  %e5, %g5 = moe.top_k %probs k = 4 normalize gate_scores(%sig) : tensor<8x4xf32>, tensor<8x4xf32>
  %e6, %g6 = moe.top_k %p k = 4 normalize : tensor<8x4xf32>
  return %g, %g3, %g4, %g5, %g6 : tensor<8x4xf32>, tensor<8x3xf32>, tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x4xf32>
}

// -----

// Keeping every expert group is no group limit; expert choice keeps a
// capacity of S (it is how many tokens each expert takes), and normalizing
// sigmoid scores over all experts stays.
// CHECK-LABEL: func @routing_family_canonical
// CHECK: moe.layer {{.*}} top_k 2 activation relu normalize_gates priority position gate_scale 2.500000e+00 :
// CHECK: moe.layer {{.*}} top_k 1 activation relu expert_capacity 8 group_size 8 priority position routing experts_choose :
// CHECK: moe.layer {{.*}} top_k 4 activation relu normalize_gates priority position score_function sigmoid :
func.func @routing_family_canonical(%x: tensor<16x4xf32>, %r: tensor<4x4xf32>,
    %wi: tensor<4x4x8xf32>, %wo: tensor<4x8x4xf32>) -> (tensor<16x4xf32>, tensor<16x4xf32>, tensor<16x4xf32>) {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo)
      top_k 2 activation relu normalize_gates priority position
      num_groups 2 topk_groups 2 group_score top2_sum gate_scale 2.5
      : tensor<16x4xf32>, tensor<4x4xf32>, tensor<4x4x8xf32>, tensor<4x8x4xf32>
  %y2, %t2, %d2, %lb2, %z2 = moe.layer %x router(%r) w_in(%wi) w_out(%wo)
      top_k 1 activation relu expert_capacity 8 group_size 8 priority position
      routing experts_choose
      : tensor<16x4xf32>, tensor<4x4xf32>, tensor<4x4x8xf32>, tensor<4x8x4xf32>
  %y3, %t3, %d3, %lb3, %z3 = moe.layer %x router(%r) w_in(%wi) w_out(%wo)
      top_k 4 activation relu normalize_gates priority position
      score_function sigmoid
      : tensor<16x4xf32>, tensor<4x4xf32>, tensor<4x4x8xf32>, tensor<4x8x4xf32>
  return %y, %y2, %y3 : tensor<16x4xf32>, tensor<16x4xf32>, tensor<16x4xf32>
}

// -----

// An exchange over one rank is the identity.
// CHECK-LABEL: func @all_to_all_one_rank
// CHECK-SAME: (%[[B:.*]]: tensor<4x8x16xf32>)
// CHECK-NEXT: %[[T:.*]] = moe.all_to_all %[[B]] ranks = 2
// CHECK-NEXT: return %[[B]], %[[T]]
func.func @all_to_all_one_rank(%b: tensor<4x8x16xf32>) -> (tensor<4x8x16xf32>, tensor<2x16x16xf32>) {
  %same = moe.all_to_all %b ranks = 1 split_dim = 0 concat_dim = 1 : tensor<4x8x16xf32>
  %two = moe.all_to_all %b ranks = 2 split_dim = 0 concat_dim = 1 : tensor<4x8x16xf32>
  return %same, %two : tensor<4x8x16xf32>, tensor<2x16x16xf32>
}

// -----

// One expert: not folded to 1, since a token with a NaN or infinite router
// logit has NaN probabilities and the loss is then NaN (spec section 3.7).
// CHECK-LABEL: func @balance_one_expert
// CHECK-DAG: %[[ONE:.*]] = moe.load_balance_loss %{{.*}}, %{{.*}} group_size = 8 : tensor<8x1xf32>
// CHECK-DAG: %[[TWO:.*]] = moe.load_balance_loss %{{.*}}, %{{.*}} group_size = 8 : tensor<8x2xf32>
// CHECK: return %[[ONE]], %[[TWO]]
func.func @balance_one_expert(%p1: tensor<8x1xf32>, %e1: tensor<8x1xi32>,
    %p2: tensor<8x2xf32>, %e2: tensor<8x1xi32>) -> (tensor<f32>, tensor<f32>) {
  %one = moe.load_balance_loss %p1, %e1 group_size = 8 : tensor<8x1xf32>, tensor<8x1xi32>
  %two = moe.load_balance_loss %p2, %e2 group_size = 8 : tensor<8x2xf32>, tensor<8x1xi32>
  return %one, %two : tensor<f32>, tensor<f32>
}

// -----

// A dropless assignment keeps everything; a bounded one may not.
// CHECK-LABEL: func @dropped_of_dropless
// CHECK-DAG: %[[ZERO:.*]] = arith.constant dense<0> : tensor<i64>
// CHECK-DAG: %{{.*}}, %[[K:[^ ]*]], %{{.*}} = moe.assign_slots %{{.*}} capacity = 2
// CHECK-DAG: %[[N:.*]] = moe.count_dropped %[[K]]
// CHECK: return %[[ZERO]], %[[N]]
func.func @dropped_of_dropless(%e: tensor<8x2xi32>) -> (tensor<i64>, tensor<i64>) {
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 priority = position : tensor<8x2xi32>
  %zero = moe.count_dropped %k : tensor<8x2xi1>
  %s2, %k2, %c2 = moe.assign_slots %e num_experts = 4 group_size = 8 capacity = 2 priority = position : tensor<8x2xi32>
  %n = moe.count_dropped %k2 : tensor<8x2xi1>
  return %zero, %n : tensor<i64>, tensor<i64>
}

// -----

// A sum over one rank is the identity.
// CHECK-LABEL: func @all_reduce_one_rank
// CHECK-SAME: (%[[C:.*]]: tensor<8xi64>)
// CHECK-NEXT: %[[S:.*]] = moe.all_reduce %[[C]] ranks = 2
// CHECK-NEXT: return %[[C]], %[[S]]
func.func @all_reduce_one_rank(%c: tensor<8xi64>) -> (tensor<8xi64>, tensor<8xi64>) {
  %one = moe.all_reduce %c ranks = 1 : tensor<8xi64>
  %two = moe.all_reduce %c ranks = 2 : tensor<8xi64>
  return %one, %two : tensor<8xi64>, tensor<8xi64>
}
