func.func @route_dynamic_router(%x: tensor<16x32xf32>, %r: tensor<?x32xf32>) {
  %l, %p, %lse = moe.route %x, %r : tensor<16x32xf32>, tensor<?x32xf32>
  return
}
