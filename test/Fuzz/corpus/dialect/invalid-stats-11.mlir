func.func @dropped_dynamic(%k: tensor<16x?xi1>) {
  %d = moe.count_dropped %k : tensor<16x?xi1>
  return
}
