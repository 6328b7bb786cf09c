func.func @top_k_negative_k(%p: tensor<16x4xf32>) {
  %e, %g = moe.top_k %p k = -1 : tensor<16x4xf32>
  return
}
