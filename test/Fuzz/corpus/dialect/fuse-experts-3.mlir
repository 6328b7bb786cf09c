func.func @bpr(%x: tensor<8x16xf32>, %r: tensor<4x16xf32>,
    %wi: tensor<4x16x24xf32>, %wo: tensor<4x24x16xf32>)
    -> (tensor<8x16xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>) {
  %y, %tpe, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo)
      top_k 1 activation relu expert_capacity 2 group_size 4
      priority batch_prioritized
      : tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x16x24xf32>, tensor<4x24x16xf32>
  return %y, %tpe, %d, %lb, %z : tensor<8x16xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>
}
