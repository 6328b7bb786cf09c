func.func @route_i32_input(%x: tensor<16x32xi32>, %r: tensor<4x32xf32>) {
  %l, %p, %lse = moe.route %x, %r : tensor<16x32xi32>, tensor<4x32xf32>
  return
}
