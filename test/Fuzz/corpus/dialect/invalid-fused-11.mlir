func.func @gmm_depth(%x: tensor<16x16xf32>, %w: tensor<4x32x64xf32>, %c: tensor<4xi64>) {
  %h = moe.grouped_matmul %x weight(%w) counts(%c)
      : tensor<16x16xf32>, tensor<4x32x64xf32>, tensor<4xi64> -> tensor<16x64xf32>
  return
}
