func.func @received_rows(%b: tensor<32x16xf32>, %wi: tensor<2x16x24xf32>,
    %wo: tensor<2x24x16xf32>, %c: tensor<2xi64>) -> tensor<32x16xf32> {
  %o = moe.expert_ffn %b w_in(%wi) w_out(%wo) counts(%c) activation gelu
      : tensor<32x16xf32>, tensor<2x16x24xf32>, tensor<2x24x16xf32>, tensor<2xi64>
  return %o : tensor<32x16xf32>
}
