func.func @gmm_scatter_rows(%h: tensor<32x64xf32>, %w: tensor<4x64x32xf32>, %c: tensor<4xi64>,
                            %t: tensor<16xi32>, %s: tensor<16xf32>) {
  %y = moe.grouped_matmul %h weight(%w) counts(%c) scatter(%t, %s)
      : tensor<32x64xf32>, tensor<4x64x32xf32>, tensor<4xi64>, tensor<16xi32>, tensor<16xf32> -> tensor<16x32xf32>
  return
}
