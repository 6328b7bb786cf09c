func.func @row_width(%b: tensor<32x16xf32>, %c: tensor<4xi64>) {
  %r, %n = moe.exchange_rows %b, %c ranks = 2 : tensor<32x16xf32>, tensor<4xi64> -> tensor<64x8xf32>, tensor<2x2xi64>
  return
}
