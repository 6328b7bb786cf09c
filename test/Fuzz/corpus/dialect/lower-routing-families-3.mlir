func.func @top_k_gate_scores(%c: tensor<4x8xf32>, %s: tensor<4x8xf32>) -> tensor<4x2xf32> {
  %e, %g = moe.top_k %c k = 2 normalize gate_scores(%s) gate_scale = 2.5 : tensor<4x8xf32>, tensor<4x8xf32>
  return %g : tensor<4x2xf32>
}
