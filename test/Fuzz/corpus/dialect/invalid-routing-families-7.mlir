func.func @ec_priority(%x: tensor<16x32xf32>, %r: tensor<8x32xf32>, %wi: tensor<8x32x64xf32>, %wo: tensor<8x64x32xf32>) {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 1 activation relu capacity_factor 1.0 priority batch_prioritized routing experts_choose
      : tensor<16x32xf32>, tensor<8x32xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>
  return
}
