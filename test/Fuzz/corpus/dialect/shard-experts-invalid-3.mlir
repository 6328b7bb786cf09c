func.func @used_result(%x: tensor<8x4xf32>, %r: tensor<2x4xf32>, %wi: tensor<2x4x8xf32>, %wo: tensor<2x8x4xf32>, %res: tensor<8x4xf32>) -> tensor<8x4xf32> {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 1 activation relu expert_capacity 2 group_size 4 priority position
      : tensor<8x4xf32>, tensor<2x4xf32>, tensor<2x4x8xf32>, tensor<2x8x4xf32>
  %sum = arith.addf %y, %res : tensor<8x4xf32>
  return %sum : tensor<8x4xf32>
}
