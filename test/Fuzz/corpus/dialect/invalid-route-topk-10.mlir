func.func @route_bf16_result(%x: tensor<16x32xbf16>, %r: tensor<4x32xbf16>) {
  %0:3 = "moe.route"(%x, %r) : (tensor<16x32xbf16>, tensor<4x32xbf16>) -> (tensor<16x4xbf16>, tensor<16x4xf32>, tensor<16xf32>)
  return
}
