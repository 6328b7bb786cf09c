func.func @route_rows_block(%p: tensor<16x4xf32>) {
  %e, %g, %k, %c, %o, %t, %w = moe.route_rows %p k = 1 group_size = 16 priority = position block = 0 : tensor<16x4xf32>
  return
}
