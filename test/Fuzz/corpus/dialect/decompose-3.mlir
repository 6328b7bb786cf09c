func.func @bpr_clamped(%x: tensor<8x4xf32>, %r: tensor<2x4xf32>,
    %wi: tensor<2x4x8xf32>, %wo: tensor<2x8x4xf32>) -> tensor<8x4xf32> {
  %y, %tpe, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo)
      top_k 1 activation silu expert_capacity 100 group_size 4 priority batch_prioritized
      : tensor<8x4xf32>, tensor<2x4xf32>, tensor<2x4x8xf32>, tensor<2x8x4xf32>
  return %y : tensor<8x4xf32>
}
