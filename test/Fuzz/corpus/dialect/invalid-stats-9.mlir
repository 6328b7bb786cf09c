func.func @z_rank(%lse: tensor<16x4xf32>) {
  %z = moe.router_z_loss %lse : tensor<16x4xf32>
  return
}
