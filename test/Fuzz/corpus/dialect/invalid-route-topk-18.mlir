func.func @top_k_zero(%p: tensor<16x4xf32>) {
  %e, %g = moe.top_k %p k = 0 : tensor<16x4xf32>
  return
}
