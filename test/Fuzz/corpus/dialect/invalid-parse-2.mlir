func.func @expert_ffn_unknown_activation(%b: tensor<4x8x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  %o = moe.expert_ffn %b w_in(%wi) w_out(%wo) activation gelu_erf : tensor<4x8x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}
