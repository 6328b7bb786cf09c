func.func @route_dynamic_result(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>) {
  %0:3 = "moe.route"(%x, %r) : (tensor<16x32xf32>, tensor<4x32xf32>) -> (tensor<16x4xf32>, tensor<16x4xf32>, tensor<?xf32>)
  return
}
