func.func @route_input_rank(%x: tensor<16x32x1xf32>, %r: tensor<4x32xf32>) {
  %l, %p, %lse = moe.route %x, %r : tensor<16x32x1xf32>, tensor<4x32xf32>
  return
}
