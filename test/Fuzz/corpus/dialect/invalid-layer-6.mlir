func.func @no_experts(%x: tensor<16x32xf32>, %r: tensor<0x32xf32>, %wi: tensor<0x32x64xf32>, %wo: tensor<0x64x32xf32>) {
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 1 activation relu priority position : tensor<16x32xf32>, tensor<0x32xf32>, tensor<0x32x64xf32>, tensor<0x64x32xf32>
  return
}
