func.func @top_k_inferred_mismatch(%p: tensor<16x4xf32>) {
  %0:2 = "moe.top_k"(%p) <{k = 2 : i64}> : (tensor<16x4xf32>) -> (tensor<16x3xi32>, tensor<16x3xf32>)
  return
}
