func.func @spanning(%x: tensor<16x16xf32>, %r: tensor<4x16xf32>, %wi: tensor<4x16x32xf32>, %wo: tensor<4x32x16xf32>)
    -> (tensor<16x16xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>) {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu normalize_gates capacity_factor 1.0 priority batch_prioritized
      : tensor<16x16xf32>, tensor<4x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>
  return %y, %t, %d, %lb, %z : tensor<16x16xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>
}
