func.func @gmm_counts(%x: tensor<16x32xf32>, %w: tensor<4x32x64xf32>, %c: tensor<3xi64>) {
  %h = moe.grouped_matmul %x weight(%w) counts(%c)
      : tensor<16x32xf32>, tensor<4x32x64xf32>, tensor<3xi64> -> tensor<16x64xf32>
  return
}
