func.func @shared_missing_out(%x: tensor<16x32xf32>, %r: tensor<8x32xf32>, %wi: tensor<8x32x64xf32>, %wo: tensor<8x64x32xf32>, %si: tensor<32x48xf32>) {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) shared_w_in(%si) top_k 2 activation relu priority position
      : tensor<16x32xf32>, tensor<8x32xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>, tensor<32x48xf32>
  return
}
