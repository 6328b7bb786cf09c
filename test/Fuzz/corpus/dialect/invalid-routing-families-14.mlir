func.func @unknown_routing(%x: tensor<16x32xf32>, %r: tensor<8x32xf32>, %wi: tensor<8x32x64xf32>, %wo: tensor<8x64x32xf32>) {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 1 activation relu priority position routing expert_choice
      : tensor<16x32xf32>, tensor<8x32xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>
  return
}
