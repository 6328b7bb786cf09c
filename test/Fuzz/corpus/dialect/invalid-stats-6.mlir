func.func @lb_bf16_probs(%p: tensor<16x4xbf16>, %e: tensor<16x2xi32>) {
  %lb = moe.load_balance_loss %p, %e group_size = 8 : tensor<16x4xbf16>, tensor<16x2xi32>
  return
}
