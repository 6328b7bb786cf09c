func.func @counts_type(%b: tensor<32x16xf32>, %c: tensor<4xi32>) {
  %r, %n = moe.exchange_rows %b, %c ranks = 2 : tensor<32x16xf32>, tensor<4xi32> -> tensor<64x16xf32>, tensor<2x2xi64>
  return
}
