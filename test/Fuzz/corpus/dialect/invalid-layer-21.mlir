func.func @capacity_factor_negative(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu capacity_factor -1.5 priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}
