func.func @lb_experts_rows(%p: tensor<16x4xf32>, %e: tensor<8x2xi32>) {
  %lb = moe.load_balance_loss %p, %e group_size = 8 : tensor<16x4xf32>, tensor<8x2xi32>
  return
}
