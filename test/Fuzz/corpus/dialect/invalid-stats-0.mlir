func.func @lb_dynamic_probs(%p: tensor<?x4xf32>, %e: tensor<16x2xi32>) {
  %lb = moe.load_balance_loss %p, %e group_size = 8 : tensor<?x4xf32>, tensor<16x2xi32>
  return
}
