func.func @w_gate_element_type(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xbf16>, %wg: tensor<4x32x64xf16>, %wo: tensor<4x64x32xbf16>) {
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_gate(%wg) w_out(%wo) top_k 2 activation swiglu priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xbf16>, tensor<4x32x64xf16>, tensor<4x64x32xbf16>
  return
}
