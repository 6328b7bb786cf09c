func.func @dynamic_rows(%b: tensor<?x16xf32>, %c: tensor<4xi64>) {
  %r, %n = moe.exchange_rows %b, %c ranks = 2 : tensor<?x16xf32>, tensor<4xi64> -> tensor<64x16xf32>, tensor<2x2xi64>
  return
}
