func.func @top_k_above_experts(%p: tensor<16x4xf32>) {
  %e, %g = moe.top_k %p k = 5 normalize : tensor<16x4xf32>
  return
}
