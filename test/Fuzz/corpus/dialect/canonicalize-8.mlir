func.func @dropped_of_dropless(%e: tensor<8x2xi32>) -> (tensor<i64>, tensor<i64>) {
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 priority = position : tensor<8x2xi32>
  %zero = moe.count_dropped %k : tensor<8x2xi1>
  %s2, %k2, %c2 = moe.assign_slots %e num_experts = 4 group_size = 8 capacity = 2 priority = position : tensor<8x2xi32>
  %n = moe.count_dropped %k2 : tensor<8x2xi1>
  return %zero, %n : tensor<i64>, tensor<i64>
}
