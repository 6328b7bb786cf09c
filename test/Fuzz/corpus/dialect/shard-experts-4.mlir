func.func @dropless_local_groups(%x: tensor<16x4xf32>, %r: tensor<4x4xf32>, %wi: tensor<4x4x8xf32>, %wo: tensor<4x8x4xf32>) -> (tensor<16x4xf32>, tensor<f32>) {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu normalize_gates group_size 4 priority position
      : tensor<16x4xf32>, tensor<4x4xf32>, tensor<4x4x8xf32>, tensor<4x8x4xf32>
  return %y, %lb : tensor<16x4xf32>, tensor<f32>
}
