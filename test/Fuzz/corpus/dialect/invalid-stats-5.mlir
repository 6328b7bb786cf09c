func.func @lb_group_size_not_dividing(%p: tensor<16x4xf32>, %e: tensor<16x2xi32>) {
  %lb = moe.load_balance_loss %p, %e group_size = 32 : tensor<16x4xf32>, tensor<16x2xi32>
  return
}
