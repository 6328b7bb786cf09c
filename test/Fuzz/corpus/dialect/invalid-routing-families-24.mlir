func.func @shared_w_gate(%x: tensor<16x32xf32>, %si: tensor<32x48xf32>, %sg: tensor<32x48xf32>, %so: tensor<48x32xf32>) {
  %o = moe.shared_expert %x, %x w_in(%si) w_gate(%sg) w_out(%so) activation relu
      : tensor<16x32xf32>, tensor<16x32xf32>, tensor<32x48xf32>, tensor<32x48xf32>, tensor<48x32xf32>
  return
}
