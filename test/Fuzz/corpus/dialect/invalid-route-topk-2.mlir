func.func @route_unranked(%x: tensor<*xf32>, %r: tensor<4x32xf32>) {
  %l, %p, %lse = moe.route %x, %r : tensor<*xf32>, tensor<4x32xf32>
  return
}
