func.func @dropped_i32(%k: tensor<16x2xi32>) {
  %d = moe.count_dropped %k : tensor<16x2xi32>
  return
}
