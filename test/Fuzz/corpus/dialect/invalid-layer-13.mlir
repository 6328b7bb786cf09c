func.func @w_gate_shape(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wg: tensor<4x32x48xf32>, %wo: tensor<4x64x32xf32>) {
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_gate(%wg) w_out(%wo) top_k 2 activation geglu priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x32x48xf32>, tensor<4x64x32xf32>
  return
}
