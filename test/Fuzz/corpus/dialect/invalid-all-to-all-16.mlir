func.func @inferred_mismatch(%b: tensor<4x8x32xf32>) {
  %a = "moe.all_to_all"(%b) <{concat_dim = 1 : i64, ranks = 2 : i64, split_dim = 0 : i64}> : (tensor<4x8x32xf32>) -> tensor<4x8x32xf32>
  return
}
