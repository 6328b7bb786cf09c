func.func @w_gate_shape(%b: tensor<4x8x32xf32>, %wi: tensor<4x32x64xf32>, %wg: tensor<4x64x32xf32>, %wo: tensor<4x64x32xf32>) {
  %o = moe.expert_ffn %b w_in(%wi) w_gate(%wg) w_out(%wo) activation swiglu : tensor<4x8x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>, tensor<4x64x32xf32>
  return
}
