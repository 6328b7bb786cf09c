func.func @missing_concat_dim(%b: tensor<4x8x32xf32>) {
  %a = "moe.all_to_all"(%b) <{ranks = 2 : i64, split_dim = 0 : i64}> : (tensor<4x8x32xf32>) -> tensor<2x16x32xf32>
  return
}
