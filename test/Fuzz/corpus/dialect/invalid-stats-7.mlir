func.func @lb_f64_result(%p: tensor<16x4xf32>, %e: tensor<16x2xi32>) {
  %lb = "moe.load_balance_loss"(%p, %e) <{group_size = 8 : i64}> : (tensor<16x4xf32>, tensor<16x2xi32>) -> tensor<f64>
  return
}
