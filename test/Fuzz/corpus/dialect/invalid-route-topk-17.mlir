func.func @top_k_dynamic(%p: tensor<?x4xf32>) {
  %e, %g = moe.top_k %p k = 2 : tensor<?x4xf32>
  return
}
