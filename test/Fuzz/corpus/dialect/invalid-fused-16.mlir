func.func @gmm_offsets(%x: tensor<16x32xf32>, %w: tensor<4x32x64xf32>, %o: tensor<4xi64>, %c: tensor<4xi64>) {
  %h = moe.grouped_matmul %x weight(%w) offsets(%o) counts(%c)
      : tensor<16x32xf32>, tensor<4x32x64xf32>, tensor<4xi64>, tensor<4xi64> -> tensor<16x64xf32>
  return
}
