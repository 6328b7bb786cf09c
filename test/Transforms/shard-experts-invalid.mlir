// Layers that moe-shard-experts cannot shard, and why.
// RUN: moe-opt %s -split-input-file --moe-shard-experts=ranks=2 -verify-diagnostics

func.func @odd_experts(%x: tensor<8x4xf32>, %r: tensor<3x4xf32>, %wi: tensor<3x4x8xf32>, %wo: tensor<3x8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{'moe.layer' op cannot be sharded over 2 ranks: its 3 experts are not divisible by 2}}
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 1 activation relu expert_capacity 2 group_size 4 priority position
      : tensor<8x4xf32>, tensor<3x4xf32>, tensor<3x4x8xf32>, tensor<3x8x4xf32>
  return %y : tensor<8x4xf32>
}

// -----

func.func @odd_tokens(%x: tensor<7x4xf32>, %r: tensor<2x4xf32>, %wi: tensor<2x4x8xf32>, %wo: tensor<2x8x4xf32>) -> tensor<7x4xf32> {
  // expected-error @+1 {{'moe.layer' op cannot be sharded over 2 ranks: its 7 tokens are not divisible by 2}}
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 1 activation relu expert_capacity 2 priority position
      : tensor<7x4xf32>, tensor<2x4xf32>, tensor<2x4x8xf32>, tensor<2x8x4xf32>
  return %y : tensor<7x4xf32>
}

// -----

func.func @shared_operand(%x: tensor<8x4xf32>, %r: tensor<2x4xf32>, %wi: tensor<2x4x8xf32>, %wo: tensor<2x8x4xf32>) -> (tensor<8x4xf32>, tensor<8x4xf32>) {
  // expected-error @+1 {{'moe.layer' op can only be sharded when its operands are arguments of its function used by it alone}}
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 1 activation relu expert_capacity 2 group_size 4 priority position
      : tensor<8x4xf32>, tensor<2x4xf32>, tensor<2x4x8xf32>, tensor<2x8x4xf32>
  return %y, %x : tensor<8x4xf32>, tensor<8x4xf32>
}

// -----

func.func @used_result(%x: tensor<8x4xf32>, %r: tensor<2x4xf32>, %wi: tensor<2x4x8xf32>, %wo: tensor<2x8x4xf32>, %res: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{'moe.layer' op can only be sharded when its results are only returned by its function}}
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 1 activation relu expert_capacity 2 group_size 4 priority position
      : tensor<8x4xf32>, tensor<2x4xf32>, tensor<2x4x8xf32>, tensor<2x8x4xf32>
  %sum = arith.addf %y, %res : tensor<8x4xf32>
  return %sum : tensor<8x4xf32>
}
