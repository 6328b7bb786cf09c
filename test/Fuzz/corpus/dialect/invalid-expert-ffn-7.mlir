func.func @w_out_element_type(%b: tensor<4x8x32xf16>, %wi: tensor<4x32x64xf16>, %wo: tensor<4x64x32xf32>) {
  %o = moe.expert_ffn %b w_in(%wi) w_out(%wo) activation gelu : tensor<4x8x32xf16>, tensor<4x32x64xf16>, tensor<4x64x32xf32>
  return
}
