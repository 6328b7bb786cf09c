func.func @route_router_rank(%x: tensor<16x32xf32>, %r: tensor<32xf32>) {
  %l, %p, %lse = moe.route %x, %r : tensor<16x32xf32>, tensor<32xf32>
  return
}
