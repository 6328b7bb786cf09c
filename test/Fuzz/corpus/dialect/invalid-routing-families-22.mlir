func.func @shared_routed(%x: tensor<16x32xf32>, %y: tensor<8x32xf32>, %si: tensor<32x48xf32>, %so: tensor<48x32xf32>) {
  %o = moe.shared_expert %x, %y w_in(%si) w_out(%so) activation relu
      : tensor<16x32xf32>, tensor<8x32xf32>, tensor<32x48xf32>, tensor<48x32xf32>
  return
}
