func.func @buffer_rank_one(%b: tensor<32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  %o = moe.expert_ffn %b w_in(%wi) w_out(%wo) activation relu : tensor<32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}
