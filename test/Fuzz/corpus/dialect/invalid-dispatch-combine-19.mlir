func.func @combine_packed_rows(%b: tensor<16x32xf32>, %e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>, %g: tensor<16x2xf32>) {
  %y = moe.combine %b, %e, %s, %k, %g : tensor<16x32xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1>, tensor<16x2xf32>
  return
}
