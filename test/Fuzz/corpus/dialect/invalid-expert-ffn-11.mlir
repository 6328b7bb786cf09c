func.func @padded_with_counts(%b: tensor<4x8x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>, %c: tensor<4xi64>) {
  %o = moe.expert_ffn %b w_in(%wi) w_out(%wo) counts(%c) activation relu : tensor<4x8x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>, tensor<4xi64>
  return
}
