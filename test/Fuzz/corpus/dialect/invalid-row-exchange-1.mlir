func.func @experts_not_divisible(%b: tensor<32x16xf32>, %c: tensor<6xi64>) {
  %r, %n = moe.exchange_rows %b, %c ranks = 4 : tensor<32x16xf32>, tensor<6xi64> -> tensor<64x16xf32>, tensor<4x1xi64>
  return
}
