func.func @received_counts_shape(%b: tensor<32x16xf32>, %c: tensor<4xi64>) {
  %r, %n = moe.exchange_rows %b, %c ranks = 2 : tensor<32x16xf32>, tensor<4xi64> -> tensor<64x16xf32>, tensor<2x4xi64>
  return
}
