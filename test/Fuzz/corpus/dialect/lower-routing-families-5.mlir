func.func @untaken(%k: tensor<4x8xi1>) -> tensor<i64> {
  %n = moe.count_dropped %k tokens : tensor<4x8xi1>
  return %n : tensor<i64>
}
