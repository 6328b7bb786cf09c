func.func @route_rows_groups(%p: tensor<16x4xf32>) {
  %e, %g, %k, %c, %o, %t, %w = moe.route_rows %p k = 1 group_size = 6 priority = position : tensor<16x4xf32>
  return
}
