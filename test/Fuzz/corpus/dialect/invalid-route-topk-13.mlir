func.func @top_k_probs_rank(%p: tensor<16xf32>) {
  %e, %g = moe.top_k %p k = 2 : tensor<16xf32>
  return
}
