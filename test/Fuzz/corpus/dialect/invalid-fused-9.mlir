func.func @sort_offsets(%e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>,
                        %g: tensor<16x2xf32>, %c: tensor<4xi64>) {
  %o, %t, %w = moe.sort_by_expert %e, %s, %k, %g, %c
      : tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1>, tensor<16x2xf32>, tensor<4xi64>
      -> tensor<4xi64>, tensor<32xi32>, tensor<32xf32>
  return
}
