func.func @gmm_result_rows(%x: tensor<16x32xf32>, %t: tensor<32xi32>, %w: tensor<4x32x64xf32>, %c: tensor<4xi64>) {
  %h = moe.grouped_matmul %x gather(%t) weight(%w) counts(%c)
      : tensor<16x32xf32>, tensor<32xi32>, tensor<4x32x64xf32>, tensor<4xi64> -> tensor<16x64xf32>
  return
}
