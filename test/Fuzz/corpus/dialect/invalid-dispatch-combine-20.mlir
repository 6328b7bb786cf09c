func.func @combine_bf16_gates(%b: tensor<4x8x32xf32>, %e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>, %g: tensor<16x2xbf16>) {
  %y = moe.combine %b, %e, %s, %k, %g : tensor<4x8x32xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1>, tensor<16x2xbf16>
  return
}
