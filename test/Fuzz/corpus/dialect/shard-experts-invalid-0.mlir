func.func @odd_experts(%x: tensor<8x4xf32>, %r: tensor<3x4xf32>, %wi: tensor<3x4x8xf32>, %wo: tensor<3x8x4xf32>) -> tensor<8x4xf32> {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 1 activation relu expert_capacity 2 group_size 4 priority position
      : tensor<8x4xf32>, tensor<3x4xf32>, tensor<3x4x8xf32>, tensor<3x8x4xf32>
  return %y : tensor<8x4xf32>
}
