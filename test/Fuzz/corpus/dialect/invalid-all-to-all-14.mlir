func.func @split_dim_generic(%b: tensor<4x8x32xf32>) {
  %a = "moe.all_to_all"(%b) <{concat_dim = 1 : i64, ranks = 2 : i64, split_dim = 7 : i64}> : (tensor<4x8x32xf32>) -> tensor<2x16x32xf32>
  return
}
