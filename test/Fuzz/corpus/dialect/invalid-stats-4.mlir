func.func @lb_group_size_zero(%p: tensor<16x4xf32>, %e: tensor<16x2xi32>) {
  %lb = moe.load_balance_loss %p, %e group_size = 0 : tensor<16x4xf32>, tensor<16x2xi32>
  return
}
