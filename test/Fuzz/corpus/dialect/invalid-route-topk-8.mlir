func.func @route_non_tensor(%x: f32, %r: tensor<4x32xf32>) {
  %0:3 = "moe.route"(%x, %r) : (f32, tensor<4x32xf32>) -> (tensor<16x4xf32>, tensor<16x4xf32>, tensor<16xf32>)
  return
}
