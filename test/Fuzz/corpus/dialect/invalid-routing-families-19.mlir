func.func @top_k_gate_scale(%p: tensor<16x8xf32>) {
  %e, %g = moe.top_k %p k = 2 gate_scale = 0.0 : tensor<16x8xf32>
  return
}
