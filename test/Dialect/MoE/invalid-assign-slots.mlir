// Invalid moe.assign_slots: result inference, every verifier rule, ODS type constraints and the inferred-type check.
// RUN: moe-opt %s -split-input-file -verify-diagnostics

func.func @experts_rank(%e: tensor<16xi32>) {
  // expected-error @+1 {{'moe.assign_slots' needs rank-2 experts and 'num_experts'}}
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 priority = position : tensor<16xi32>
  return
}

// -----

func.func @negative_num_experts(%e: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.assign_slots' 'num_experts' must be positive, got -3}}
  %s, %k, %c = moe.assign_slots %e num_experts = -3 group_size = 8 priority = position : tensor<16x2xi32>
  return
}

// -----

func.func @int64_min_num_experts(%e: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.assign_slots' 'num_experts' must be positive, got -9223372036854775808}}
  %s, %k, %c = moe.assign_slots %e num_experts = -9223372036854775808 group_size = 8 priority = position : tensor<16x2xi32>
  return
}

// -----

func.func @dynamic_experts(%e: tensor<?x2xi32>) {
  // expected-error @+1 {{'moe.assign_slots' op operand #0 must have a static shape, got 'tensor<?x2xi32>'}}
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 priority = position : tensor<?x2xi32>
  return
}

// -----

func.func @dynamic_probs(%e: tensor<16x2xi32>, %p: tensor<16x?xf32>) {
  // expected-error @+1 {{'moe.assign_slots' op operand #1 must have a static shape, got 'tensor<16x?xf32>'}}
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 priority = batch_prioritized(%p) : tensor<16x2xi32>, tensor<16x?xf32>
  return
}

// -----

func.func @zero_num_experts(%e: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.assign_slots' op 'num_experts' must be positive, got 0}}
  %s, %k, %c = moe.assign_slots %e num_experts = 0 group_size = 8 priority = position : tensor<16x2xi32>
  return
}

// -----

func.func @negative_num_experts_generic(%e: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.assign_slots' op 'num_experts' must be positive, got -4}}
  %0:3 = "moe.assign_slots"(%e) <{group_size = 8 : i64, num_experts = -4 : i64, priority = #moe<priority position>}> : (tensor<16x2xi32>) -> (tensor<16x2xi32>, tensor<16x2xi1>, tensor<4xi64>)
  return
}

// -----

func.func @too_many_choices(%e: tensor<16x5xi32>) {
  // expected-error @+1 {{'moe.assign_slots' op 'experts' must have between 1 and num_experts (4) choices per token, got 5}}
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 priority = position : tensor<16x5xi32>
  return
}

// -----

func.func @no_choices(%e: tensor<16x0xi32>) {
  // expected-error @+1 {{'moe.assign_slots' op 'experts' must have between 1 and num_experts (4) choices per token, got 0}}
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 priority = position : tensor<16x0xi32>
  return
}

// -----

func.func @group_size_zero(%e: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.assign_slots' op 'group_size' must be positive, got 0}}
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 0 priority = position : tensor<16x2xi32>
  return
}

// -----

func.func @group_size_negative(%e: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.assign_slots' op 'group_size' must be positive, got -8}}
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = -8 priority = position : tensor<16x2xi32>
  return
}

// -----

func.func @group_size_not_dividing(%e: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.assign_slots' op 'group_size' (6) must divide the number of tokens (16)}}
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 6 priority = position : tensor<16x2xi32>
  return
}

// -----

func.func @capacity_zero(%e: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.assign_slots' op 'capacity' must be positive, got 0}}
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 capacity = 0 priority = position : tensor<16x2xi32>
  return
}

// -----

func.func @batch_prioritized_without_probs(%e: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.assign_slots' op priority 'batch_prioritized' needs the router probabilities as an operand}}
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 capacity = 4 priority = batch_prioritized : tensor<16x2xi32>
  return
}

// -----

func.func @probs_with_position(%e: tensor<16x2xi32>, %p: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.assign_slots' op router probabilities are only read with priority 'batch_prioritized'}}
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 capacity = 4 priority = position(%p) : tensor<16x2xi32>, tensor<16x4xf32>
  return
}

// -----

func.func @probs_tokens(%e: tensor<16x2xi32>, %p: tensor<8x4xf32>) {
  // expected-error @+1 {{'moe.assign_slots' op 'probs' must have shape [16, 4] (T, E), got [8, 4]}}
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 capacity = 4 priority = batch_prioritized(%p) : tensor<16x2xi32>, tensor<8x4xf32>
  return
}

// -----

func.func @probs_experts(%e: tensor<16x2xi32>, %p: tensor<16x8xf32>) {
  // expected-error @+1 {{'moe.assign_slots' op 'probs' must have shape [16, 4] (T, E), got [16, 8]}}
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 capacity = 4 priority = batch_prioritized(%p) : tensor<16x2xi32>, tensor<16x8xf32>
  return
}

// -----

func.func @i64_experts(%e: tensor<16x2xi64>) {
  // expected-error @+1 {{'moe.assign_slots' op operand #0 must be 2D tensor of 32-bit signless integer values, but got 'tensor<16x2xi64>'}}
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 priority = position : tensor<16x2xi64>
  return
}

// -----

func.func @bf16_probs(%e: tensor<16x2xi32>, %p: tensor<16x4xbf16>) {
  // expected-error @+1 {{'moe.assign_slots' op operand #1 must be 2D tensor of 32-bit float values, but got 'tensor<16x4xbf16>'}}
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 priority = batch_prioritized(%p) : tensor<16x2xi32>, tensor<16x4xbf16>
  return
}

// -----

func.func @missing_group_size(%e: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.assign_slots' op requires attribute 'group_size'}}
  %0:3 = "moe.assign_slots"(%e) <{num_experts = 4 : i64}> : (tensor<16x2xi32>) -> (tensor<16x2xi32>, tensor<16x2xi1>, tensor<4xi64>)
  return
}

// -----

func.func @inferred_counts(%e: tensor<16x2xi32>) {
  // expected-error @+2 {{'moe.assign_slots' op failed to infer returned types}}
  // expected-error @+1 {{'moe.assign_slots' op inferred type(s) 'tensor<16x2xi32>', 'tensor<16x2xi1>', 'tensor<4xi64>' are incompatible with return type(s) of operation 'tensor<16x2xi32>', 'tensor<16x2xi1>', 'tensor<8xi64>'}}
  %0:3 = "moe.assign_slots"(%e) <{group_size = 8 : i64, num_experts = 4 : i64, priority = #moe<priority position>}> : (tensor<16x2xi32>) -> (tensor<16x2xi32>, tensor<16x2xi1>, tensor<8xi64>)
  return
}

// -----

func.func @packed_without_capacity(%e: tensor<8x2xi32>) {
  // expected-error @+1 {{'moe.assign_slots' op 'packed' is implied without a capacity; drop it}}
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 priority = position packed : tensor<8x2xi32>
  return
}
