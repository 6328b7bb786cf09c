func.func @gated_without_w_gate(%b: tensor<4x8x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  %o = moe.expert_ffn %b w_in(%wi) w_out(%wo) activation geglu : tensor<4x8x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}
