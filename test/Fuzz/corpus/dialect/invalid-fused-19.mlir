func.func @gmm_scatter_cols(%h: tensor<32x64xf32>, %w: tensor<4x64x32xf32>, %c: tensor<4xi64>,
                            %t: tensor<32xi32>, %s: tensor<32xf32>) {
  %y = moe.grouped_matmul %h weight(%w) counts(%c) scatter(%t, %s)
      : tensor<32x64xf32>, tensor<4x64x32xf32>, tensor<4xi64>, tensor<32xi32>, tensor<32xf32> -> tensor<16x16xf32>
  return
}
