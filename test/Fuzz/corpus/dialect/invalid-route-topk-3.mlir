func.func @route_dynamic_input(%x: tensor<?x32xf32>, %r: tensor<4x32xf32>) {
  %l, %p, %lse = moe.route %x, %r : tensor<?x32xf32>, tensor<4x32xf32>
  return
}
