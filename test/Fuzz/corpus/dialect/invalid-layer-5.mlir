func.func @no_features(%x: tensor<16x0xf32>, %r: tensor<4x0xf32>, %wi: tensor<4x0x64xf32>, %wo: tensor<4x64x0xf32>) {
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu priority position : tensor<16x0xf32>, tensor<4x0xf32>, tensor<4x0x64xf32>, tensor<4x64x0xf32>
  return
}
