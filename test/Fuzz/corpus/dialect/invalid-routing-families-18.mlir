func.func @top_k_gate_scores(%p: tensor<16x8xf32>, %s: tensor<16x4xf32>) {
  %e, %g = moe.top_k %p k = 2 gate_scores(%s) : tensor<16x8xf32>, tensor<16x4xf32>
  return
}
