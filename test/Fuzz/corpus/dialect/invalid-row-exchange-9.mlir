func.func @return_one_rank(%o: tensor<64x16xf32>, %n: tensor<1x4xi64>, %c: tensor<4xi64>) {
  %b = moe.return_rows %o, %n, %c ranks = 1 : tensor<64x16xf32>, tensor<1x4xi64>, tensor<4xi64> -> tensor<32x16xf32>
  return
}
