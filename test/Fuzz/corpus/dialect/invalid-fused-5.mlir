func.func @route_rows_dynamic(%p: tensor<?x4xf32>) {
  %e, %g, %k, %c, %o, %t, %w = moe.route_rows %p k = 1 group_size = 16 priority = position : tensor<?x4xf32>
  return
}
