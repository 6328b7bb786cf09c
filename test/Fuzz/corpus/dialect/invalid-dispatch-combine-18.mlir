func.func @combine_gates_shape(%b: tensor<4x8x32xf32>, %e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>, %g: tensor<16x4xf32>) {
  %y = moe.combine %b, %e, %s, %k, %g : tensor<4x8x32xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1>, tensor<16x4xf32>
  return
}
