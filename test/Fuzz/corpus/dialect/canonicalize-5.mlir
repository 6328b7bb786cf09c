func.func @top_k_all_experts(%p: tensor<8x4xf32>) -> (tensor<8x4xf32>, tensor<8x3xf32>) {
  %e, %g = moe.top_k %p k = 4 normalize : tensor<8x4xf32>
  %e3, %g3 = moe.top_k %p k = 3 normalize : tensor<8x4xf32>
  return %g, %g3 : tensor<8x4xf32>, tensor<8x3xf32>
}
