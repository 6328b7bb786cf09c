func.func @shared_gated(%x: tensor<16x32xf32>, %r: tensor<8x32xf32>, %wi: tensor<8x32x64xf32>, %wg: tensor<8x32x64xf32>, %wo: tensor<8x64x32xf32>, %si: tensor<32x48xf32>, %so: tensor<48x32xf32>) {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_gate(%wg) w_out(%wo) shared_w_in(%si) shared_w_out(%so) top_k 2 activation swiglu priority position
      : tensor<16x32xf32>, tensor<8x32xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>, tensor<32x48xf32>, tensor<48x32xf32>
  return
}
