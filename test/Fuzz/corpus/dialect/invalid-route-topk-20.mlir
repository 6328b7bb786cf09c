func.func @top_k_bf16_probs(%p: tensor<16x4xbf16>) {
  %e, %g = moe.top_k %p k = 2 : tensor<16x4xbf16>
  return
}
