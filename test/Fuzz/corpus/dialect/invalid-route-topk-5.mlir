func.func @route_router_width(%x: tensor<16x32xf32>, %r: tensor<4x16xf32>) {
  %l, %p, %lse = moe.route %x, %r : tensor<16x32xf32>, tensor<4x16xf32>
  return
}
