func.func @min_capacity(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>,
    %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) -> tensor<16x32xf32> {
  %y, %tpe, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo)
      top_k 1 activation gelu capacity_factor 0.1 min_capacity 3 priority position
      : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return %y : tensor<16x32xf32>
}
