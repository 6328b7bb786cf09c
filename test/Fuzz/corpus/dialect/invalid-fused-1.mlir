func.func @route_rows_k0(%p: tensor<16x4xf32>) {
  %e, %g, %k, %c, %o, %t, %w = moe.route_rows %p k = 0 group_size = 16 priority = position : tensor<16x4xf32>
  return
}
