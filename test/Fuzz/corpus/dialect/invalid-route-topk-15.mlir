func.func @top_k_int64_min_k(%p: tensor<16x4xf32>) {
  %e, %g = moe.top_k %p k = -9223372036854775808 : tensor<16x4xf32>
  return
}
