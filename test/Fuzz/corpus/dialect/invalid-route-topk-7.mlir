func.func @route_f64_router(%x: tensor<16x32xf32>, %r: tensor<4x32xf64>) {
  %l, %p, %lse = moe.route %x, %r : tensor<16x32xf32>, tensor<4x32xf64>
  return
}
