func.func @top_k_missing_k(%p: tensor<16x4xf32>) {
  %0:2 = "moe.top_k"(%p) : (tensor<16x4xf32>) -> (tensor<16x2xi32>, tensor<16x2xf32>)
  return
}
