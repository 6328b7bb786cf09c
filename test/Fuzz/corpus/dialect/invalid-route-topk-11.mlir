func.func @route_inferred_mismatch(%x: tensor<16x32xbf16>, %r: tensor<4x32xf32>) {
  %0:3 = "moe.route"(%x, %r) : (tensor<16x32xbf16>, tensor<4x32xf32>) -> (tensor<16x8xf32>, tensor<16x4xf32>, tensor<16xf32>)
  return
}
