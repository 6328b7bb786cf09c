func.func @top_k_negative_k_generic(%p: tensor<16x4xf32>) {
  %0:2 = "moe.top_k"(%p) <{k = -2 : i64}> : (tensor<16x4xf32>) -> (tensor<16x2xi32>, tensor<16x2xf32>)
  return
}
