func.func @dropped_result_i32(%k: tensor<16x2xi1>) {
  %d = "moe.count_dropped"(%k) : (tensor<16x2xi1>) -> tensor<i32>
  return
}
