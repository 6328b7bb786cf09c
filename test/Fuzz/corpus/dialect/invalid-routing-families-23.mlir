func.func @shared_gate_shape(%x: tensor<16x32xf32>, %si: tensor<32x48xf32>, %so: tensor<48x32xf32>, %g: tensor<48xf32>) {
  %o = moe.shared_expert %x, %x w_in(%si) w_out(%so) gate(%g) activation relu
      : tensor<16x32xf32>, tensor<16x32xf32>, tensor<32x48xf32>, tensor<48x32xf32>, tensor<48xf32>
  return
}
