func.func @return_row_width(%o: tensor<64x16xf32>, %n: tensor<2x2xi64>, %c: tensor<4xi64>) {
  %b = moe.return_rows %o, %n, %c ranks = 2 : tensor<64x16xf32>, tensor<2x2xi64>, tensor<4xi64> -> tensor<32x32xf32>
  return
}
